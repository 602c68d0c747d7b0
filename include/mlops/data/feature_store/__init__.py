"""The feature store: feature and label rows keyed by entity and event time, one partition per day.

Two backends behind one interface (``base.FeatureStore``), chosen by ``MLOPS_FEATURE_STORE``:

* ``parquet`` (embedded default; module ``parquet``): ``features/<use_case>/<interval>.parquet``
  in the lake.
* ``postgres`` (production stack; modules ``postgres`` and ``postgres_schema``): tables
  ``features_<use_case>`` and ``labels_<use_case>`` in the database of the
  ``MLOPS_FEATURE_STORE_CONN_ID`` connection, partitioned by day, each day by the partitions its
  delivery was checked in.

Writing a partition replaces it whole (an atomic file move, or one transaction that swaps the
day's table), so re-materialising an interval never duplicates rows. What a day's rows are (their
content hash, the data version) is ``hashing``'s.
"""

from __future__ import annotations

from mlops.data.feature_store.base import FeatureStore, Parts, label_manifest
from mlops.data.feature_store.hashing import ROW_HASH, FrameHash, Rows, frame_hash, row_hashes
from mlops.data.feature_store.parquet import ROW_GROUP_ROWS, ParquetFeatureStore, parquet_writer
from mlops.data.feature_store.postgres import PostgresFeatureStore
from mlops.data.feature_store.postgres_schema import DDL_LOCK, PART, PARTITIONS, STAGE_TTL, STAGES

__all__ = [
    "DDL_LOCK",
    "PART",
    "PARTITIONS",
    "ROW_GROUP_ROWS",
    "ROW_HASH",
    "STAGES",
    "STAGE_TTL",
    "FeatureStore",
    "FrameHash",
    "ParquetFeatureStore",
    "Parts",
    "PostgresFeatureStore",
    "Rows",
    "frame_hash",
    "get_feature_store",
    "label_manifest",
    "parquet_writer",
    "row_hashes",
]


def get_feature_store() -> FeatureStore:
    from mlops.core.lake import get_lake
    from mlops.core.settings import load_settings

    settings = load_settings()
    if settings.feature_store == "postgres":
        return PostgresFeatureStore(settings.feature_store_conn_id)
    return ParquetFeatureStore(get_lake())
