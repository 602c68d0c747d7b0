"""The training set of one training run: built point in time, split, written to the lake, read back.

The ``prepare_training_set`` task writes the splits and a manifest under a key derived from the
Airflow run id, so a retry rewrites the same files; training, the candidates and the gate read the
splits through :func:`read_split`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING

from mlops.core import layout
from mlops.core.results import TrainingSetManifest
from mlops.data.feature_store import parquet_writer
from mlops.model.training import SPLITS, build_training_set, split, training_window

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake
    from mlops.data.feature_store import FeatureStore


def _safe(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()[:12]


def prepare_training_set(
    use_case: UseCase,
    interval: dt.date,
    lake: Lake,
    store: FeatureStore,
    airflow_run_id: str,
    *,
    window_days: int | None = None,
) -> TrainingSetManifest:
    """Build the point-in-time training set, split it and write the splits to the lake."""
    from mlops.data.tasks import refresh_stale_features

    start, end, _ = training_window(use_case, interval, window_days)
    refresh_stale_features(
        use_case, [start + dt.timedelta(days=i) for i in range((end - start).days + 1)], lake, store
    )
    frame, lineage = build_training_set(store, use_case, interval, window_days)
    lineage["feature_version"] = use_case.feature_version
    parts = split(frame, use_case)
    run_key = _safe(airflow_run_id)
    uris = {}
    for name in SPLITS:
        uris[name] = lake.write_with(
            layout.training_split(use_case.name, interval, run_key, name), parquet_writer(parts[name])
        )
    lineage_hash = hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest()
    manifest = TrainingSetManifest(
        use_case=use_case.name,
        interval=interval.isoformat(),
        run_key=run_key,
        rows={k: len(v) for k, v in parts.items()},
        lineage=lineage,
        training_set_hash=lineage_hash,
        uris=uris,
    )
    lake.write_json(layout.training_set_manifest(use_case.name, interval, run_key), manifest)
    return manifest


def read_split(lake: Lake, manifest: TrainingSetManifest, name: str) -> pd.DataFrame:
    import pandas as pd

    with lake.open_read(
        layout.training_split(manifest["use_case"], manifest["interval"], manifest["run_key"], name)
    ) as fh:
        return pd.read_parquet(fh)
