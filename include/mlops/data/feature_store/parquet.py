"""The Parquet feature store (the embedded default): ``features/<use_case>/<interval>.parquet`` in
the lake, one file per day and kind, each with a manifest written once the file is in place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import FeaturePartition, LabelPartition
from mlops.data.feature_store.base import (
    PartitionedStore,
    Parts,
    label_manifest,
    label_partition,
    partition_manifest,
    text_for_null,
)
from mlops.data.feature_store.hashing import FrameHash, Rows

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.lake import Lake

ROW_GROUP_ROWS = 100_000


def parquet_writer(frame: pd.DataFrame) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        frame.to_parquet(fh, index=False, row_group_size=ROW_GROUP_ROWS)

    return write


class _PartWriter:
    """Appends parts to one Parquet file, each cast to the first one's schema (text stays text
    when a later part's text column happens to be all null), and hashes them as they pass."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.hash = FrameHash()
        self._writer: Any = None
        self._schema: Any = None

    def write(self, rows: Rows) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.hash.update_rows(rows.hashes, rows.table.column_names)
        if self._schema is None:
            self._schema = text_for_null(rows.table.schema)
            # Dictionary encoding for text only: on float columns of distinct values it costs
            # time (a third of the write) and makes the file larger.
            text = [
                f.name for f in self._schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            ]
            self._writer = pq.ParquetWriter(self.fh, self._schema, use_dictionary=text)
        self._writer.write_table(rows.table.cast(self._schema), row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _drain(parts: Parts, features: _PartWriter, labels: _PartWriter | None) -> None:
    try:
        for part_features, part_labels in parts:
            features.write(part_features)
            if labels is not None:
                if part_labels is None:
                    raise ValueError("a part without labels in a day written with labels")
                labels.write(part_labels)
    finally:
        features.close()
        if labels is not None:
            labels.close()


class ParquetFeatureStore(PartitionedStore):
    """Parquet partitions in the lake, with a manifest per partition (rows and content hash)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def write_partition_parts(
        self,
        use_case: str,
        interval: dt.date,
        parts: Parts,
        feature_version: str | None = None,
        *,
        with_labels: bool,
    ) -> FeaturePartition:
        """A day's features (and labels) from consecutive parts, streamed into one file each; one
        part in memory at a time."""
        writers: dict[str, _PartWriter] = {}

        def write_features(features_fh: IO[bytes]) -> None:
            writers["features"] = _PartWriter(features_fh)
            if not with_labels:
                _drain(parts, writers["features"], None)
                return

            def write_labels(labels_fh: IO[bytes]) -> None:
                writers["labels"] = _PartWriter(labels_fh)
                _drain(parts, writers["features"], writers["labels"])

            self.lake.write_with(layout.store_partition("labels", use_case, interval), write_labels)

        self.lake.write_with(layout.store_partition("features", use_case, interval), write_features)
        labels = writers.get("labels")
        manifest = partition_manifest(
            use_case, interval, writers["features"].hash, labels.hash if labels else None, feature_version
        )
        # The manifests go last: a partition is read only once its files are in place. Features
        # first: a day whose labels are not committed yet reads like labels still to come, while
        # labels without their features would be a training row with nothing to learn from.
        faults.point("materialize")
        self.lake.write_json(layout.feature_manifest(use_case, interval), manifest)
        if labels is not None:
            label_rel = layout.label_manifest(use_case, interval)
            self.lake.write_json(label_rel, label_partition(use_case, interval, labels.hash))
        return manifest

    def stage_part(
        self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None
    ) -> None:
        """Nothing: the commit writes the day's file from the checks' staging in the lake."""

    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
        """The labels delivered on a day (a label feed), replacing that day's delivery."""
        manifest = label_manifest(use_case, interval, labels)
        self.lake.write_with(layout.store_partition("labels", use_case, interval), parquet_writer(labels))
        self.lake.write_json(layout.label_manifest(use_case, interval), manifest)
        return manifest

    def _read(self, kind: layout.FeatureKind, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        import pandas as pd

        frames = []
        for day in _days(start, end):
            # Only committed partitions: their manifest is written after the data is in place,
            # so a file left by a writer that died before committing is never read.
            if self.lake.exists(self._manifest(kind, use_case, day)):
                with self.lake.open_read(layout.store_partition(kind, use_case, day)) as fh:
                    frames.append(pd.read_parquet(fh))
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _manifest(kind: layout.FeatureKind, use_case: str, day: dt.date) -> str:
        if kind == "features":
            return layout.feature_manifest(use_case, day)
        return layout.label_manifest(use_case, day)

    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The partition in chunks of at most ``chunk_rows`` rows (memory stays flat)."""
        import pyarrow.parquet as pq

        rel = layout.store_partition("features", use_case, interval)
        if not self.lake.exists(layout.feature_manifest(use_case, interval)):
            raise FileNotFoundError(
                f"use case {use_case!r}: no committed feature partition for {interval} "
                f"at {self.lake.uri(rel)} "
                "(no manifest: run the data DAG for that day)"
            )
        with self.lake.open_read(rel) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()

    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]:
        out = {}
        for name in self.lake.list(layout.feature_manifests_dir(use_case)):
            if name.endswith(".json"):
                day = dt.date.fromisoformat(name.removesuffix(".json"))
                out[day] = self.lake.read_json(layout.feature_manifest(use_case, day))
        return out
