"""The feature store's interface, the manifests a write returns, and what both backends share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mlops.core.results import FeaturePartition, LabelPartition
from mlops.data.feature_store.hashing import FrameHash, Rows, frame_hash

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd
    import pyarrow as pa

    from mlops.core.layout import FeatureKind

Parts = Iterable[tuple[Rows, "Rows | None"]]
"""A day's rows in consecutive parts: features, and labels when the batch carries them."""


def partition_manifest(
    use_case: str,
    interval: dt.date,
    features: FrameHash,
    labels: FrameHash | None,
    feature_version: str | None,
) -> FeaturePartition:
    """The manifest of a day's features (with the count of the labels the batch carried)."""
    manifest = FeaturePartition(
        use_case=use_case,
        interval=interval.isoformat(),
        rows=features.rows,
        label_rows=0 if labels is None else labels.rows,
        content_hash=features.hexdigest(),
    )
    if feature_version is not None:
        manifest["feature_version"] = feature_version
    return manifest


def label_manifest(use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
    """The manifest of a day's labels, from the frame."""
    return LabelPartition(
        use_case=use_case, interval=interval.isoformat(), rows=len(labels), content_hash=frame_hash(labels)
    )


def text_for_null(schema: pa.Schema) -> pa.Schema:
    """A column that is all null in a part is text: it has no type of its own to keep."""
    import pyarrow as pa

    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema


class FeatureStore(ABC):
    """The feature store's interface, and what both backends share: a day written from frames is a
    day of one part, and the two kinds of rows are read the same way."""

    def write_partition(
        self,
        use_case: str,
        interval: dt.date,
        features: pd.DataFrame,
        labels: pd.DataFrame | None,
        feature_version: str | None = None,
    ) -> FeaturePartition:
        """Features of a day, and its labels when they come in the batch (``None``: a label feed's)."""
        part = (Rows.of(features), None if labels is None else Rows.of(labels))
        return self.write_partition_parts(
            use_case, interval, [part], feature_version, with_labels=labels is not None
        )

    @abstractmethod
    def write_partition_parts(
        self,
        use_case: str,
        interval: dt.date,
        parts: Parts,
        feature_version: str | None = None,
        *,
        with_labels: bool,
    ) -> FeaturePartition:
        """A day's features (and labels) from consecutive parts, replacing the day whole."""

    @abstractmethod
    def stage_part(
        self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None
    ) -> None:
        """Take in one checked partition of a day ahead of its commit (in the mapped check, so the
        workers share the writing), or do nothing if the commit writes everything itself."""

    @abstractmethod
    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
        """A label feed's rows for a day, replacing the day's earlier feed."""

    @abstractmethod
    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]:
        """The committed days of a use case and their manifests."""

    @abstractmethod
    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """A committed day's features in chunks of at most ``chunk_rows`` rows."""

    @abstractmethod
    def _read(self, kind: FeatureKind, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The committed rows of one kind on the days ``start`` .. ``end``."""

    def read_features(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self._read("features", use_case, start, end)

    def read_labels(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self._read("labels", use_case, start, end)
