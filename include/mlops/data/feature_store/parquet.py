"""The Parquet feature store (the embedded default): a day's rows in the lake, committed once, whole.

A day's files are written under names no other content takes (the SHA-256 of their bytes,
``layout.store_file``), then ONE manifest write commits them, under the day's lock
(``layout.store_lock``): the manifest names each file with its hash, size and rows. Two runs of the
same day (a manual run beside the scheduled one) commit one after the other, and the day is one
delivery's features, labels and manifest, never a mix. Readers read the manifest first, then only
the files it names, and check each file's hash: a file that does not match fails the read loudly.
The files of the commit a new one replaces are removed once the new manifest is in place (under the
same lock, so that a writer committing the same content again cannot lose its files); a reader
that finds them gone reads the manifest again.

A batch's labels are committed with its features, by the day's feature manifest; a label feed's,
by the day's label manifest. A day written in the earlier layout (one file per kind at
``layout.store_partition``, manifests without a file list) reads as it is, unverified (its
manifests recorded no file hash), and the next commit of the day replaces it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypedDict

from mlops.core import faults, layout
from mlops.core.results import FeaturePartition, LabelPartition
from mlops.data.feature_store.base import (
    FeatureStore,
    Parts,
    label_manifest,
    partition_manifest,
    text_for_null,
)
from mlops.data.feature_store.hashing import FrameHash, Rows

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.lake import Lake

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 100_000
LOCK_LEASE = 300.0
"""Seconds a commit may hold a day's lock on S3 (a dead holder's lock is broken after it): far
more than a commit takes (read a manifest, move two files, write a manifest)."""
LOCK_WAIT = 600.0
"""Seconds a commit waits for the day's lock before this try fails (and Airflow retries it)."""
READ_TRIES = 5
"""Times a reader reads a day's manifest again when the files it named were replaced meanwhile."""
_HASH_CHUNK = 8 * 2**20


class CommittedFile(TypedDict):
    """A file a manifest commits: where, its bytes' SHA-256 and size, and what rows it holds."""

    path: str
    sha256: str
    bytes: int
    rows: int
    content_hash: str


class PartitionMismatch(RuntimeError):
    """A committed file is not what its manifest recorded (changed or damaged after its commit)."""


def parquet_writer(frame: pd.DataFrame) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        frame.to_parquet(fh, index=False, row_group_size=ROW_GROUP_ROWS)

    return write


class _HashingWriter(io.RawIOBase):
    """A write-only handle passing bytes on to ``fh`` and hashing them as they pass, so a file's
    name (its SHA-256) is known once it is written, without reading it back."""

    def __init__(self, fh: IO[bytes]) -> None:
        super().__init__()
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._fh.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if not self._fh.closed:  # the lake closes its handle, once the file is written
            self._fh.flush()


class _PartWriter:
    """Appends parts to one Parquet file, each cast to the first one's schema (text stays text
    when a later part's text column happens to be all null), and hashes them as they pass."""

    def __init__(self, fh: _HashingWriter) -> None:
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


@dataclass(frozen=True)
class _Source:
    """Where a reader finds a day's rows of one kind, and what the manifest says they are (no hash
    for a file of the earlier layout)."""

    path: str
    sha256: str | None = None
    bytes: int | None = None
    rows: int | None = None


@dataclass(frozen=True)
class _Snapshot:
    """A day as one reading of its manifests found it: the feature manifest, and the files a
    reader reads, by kind."""

    record: dict[str, Any] | None
    sources: dict[str, _Source]


@dataclass(frozen=True)
class CommittedDay:
    """One commit of a day, read whole: its manifest, its features and its labels (``None``: the
    batch carried none, and no label feed delivered any)."""

    manifest: FeaturePartition
    features: pd.DataFrame
    labels: pd.DataFrame | None


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


def _committed_file(
    kind: layout.FeatureKind, use_case: str, day: dt.date, written: _HashingWriter, rows: FrameHash
) -> CommittedFile:
    sha = written.sha256.hexdigest()
    return CommittedFile(
        path=layout.store_file(kind, use_case, day, sha),
        sha256=sha,
        bytes=written.size,
        rows=rows.rows,
        content_hash=rows.hexdigest(),
    )


def _named(
    manifest: dict[str, Any], kind: layout.FeatureKind, use_case: str, day: dt.date
) -> dict[str, _Source]:
    """The files a manifest commits, by kind; a manifest of the earlier layout names none: its
    kind's file is at the one path of that layout."""
    files = manifest.get("files")
    if files is None:
        return {kind: _Source(layout.store_partition(kind, use_case, day))}
    return {
        k: _Source(f["path"], sha256=f["sha256"], bytes=f["bytes"], rows=f["rows"]) for k, f in files.items()
    }


def _feature_partition(record: dict[str, Any]) -> FeaturePartition:
    """What a caller gets of a feature manifest: the partition, without the files behind it."""
    out = FeaturePartition(
        use_case=record["use_case"],
        interval=record["interval"],
        rows=record["rows"],
        label_rows=record["label_rows"],
        content_hash=record["content_hash"],
    )
    if "feature_version" in record:
        out["feature_version"] = record["feature_version"]
    return out


def _label_partition(record: dict[str, Any]) -> LabelPartition:
    return LabelPartition(
        use_case=record["use_case"],
        interval=record["interval"],
        rows=record["rows"],
        content_hash=record["content_hash"],
    )


class ParquetFeatureStore(FeatureStore):
    """Parquet partitions in the lake, each day committed by one manifest naming its files."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    # Writes ------------------------------------------------------------------------------
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
        part in memory at a time. Then the day's one commit: its manifest, naming both files."""
        kinds: list[layout.FeatureKind] = ["features", "labels"] if with_labels else ["features"]
        token = uuid.uuid4().hex
        staged: dict[str, str] = {
            kind: layout.store_file_in_progress(kind, use_case, interval, token) for kind in kinds
        }
        written: dict[str, _HashingWriter] = {}
        writers: dict[str, _PartWriter] = {}

        def write(kind: layout.FeatureKind, fh: IO[bytes]) -> None:
            written[kind] = _HashingWriter(fh)
            writers[kind] = _PartWriter(written[kind])
            if kind == kinds[-1]:
                _drain(parts, writers["features"], writers.get("labels"))
            else:  # both files open at once: each part goes to both
                self.lake.write_with(staged["labels"], lambda labels_fh: write("labels", labels_fh))

        try:
            self.lake.write_with(staged["features"], lambda fh: write("features", fh))
            labels = writers.get("labels")
            manifest = partition_manifest(
                use_case, interval, writers["features"].hash, labels.hash if labels else None, feature_version
            )
            files = {k: _committed_file(k, use_case, interval, written[k], writers[k].hash) for k in kinds}
            record = {**manifest, "files": files}
            committed = self._commit(
                use_case, interval, layout.feature_manifest(use_case, interval), record, staged, "materialize"
            )
        finally:
            for rel in staged.values():  # moved into place by the commit, or not needed
                self.lake.delete(rel)
        return _feature_partition(committed)

    def stage_part(
        self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None
    ) -> None:
        """Nothing: the commit writes the day's file from the checks' staging in the lake."""

    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
        """The labels delivered on a day (a label feed), replacing that day's delivery."""
        manifest = label_manifest(use_case, interval, labels)
        staged = {"labels": layout.store_file_in_progress("labels", use_case, interval, uuid.uuid4().hex)}
        written: dict[str, _HashingWriter] = {}

        def write(fh: IO[bytes]) -> None:
            written["labels"] = _HashingWriter(fh)
            labels.to_parquet(written["labels"], index=False, row_group_size=ROW_GROUP_ROWS)

        try:
            self.lake.write_with(staged["labels"], write)
            sha = written["labels"].sha256.hexdigest()
            files = {
                "labels": CommittedFile(
                    path=layout.store_file("labels", use_case, interval, sha),
                    sha256=sha,
                    bytes=written["labels"].size,
                    rows=manifest["rows"],
                    content_hash=manifest["content_hash"],
                )
            }
            record = {**manifest, "files": files}
            committed = self._commit(
                use_case, interval, layout.label_manifest(use_case, interval), record, staged, None
            )
        finally:
            self.lake.delete(staged["labels"])
        return _label_partition(committed)

    def _commit(
        self,
        use_case: str,
        day: dt.date,
        manifest_rel: str,
        record: dict[str, Any],
        staged: dict[str, str],
        fault_point: str | None,
    ) -> dict[str, Any]:
        """Move the written files to their names and write the manifest naming them: the day's
        one commit, under its lock. Then remove what no manifest of the day names any more.

        The same commit already in place (a retry, or a second run of the same delivery) is left
        as it is. Whoever commits last wins, whole: the lock orders the commits, and the files a
        commit supersedes are removed before the next commit of the day can start, so a commit
        never finds the files it names removed under it.
        """
        with self.lake.lock(layout.store_lock(use_case, day), lease=LOCK_LEASE, wait=LOCK_WAIT):
            current = self._manifest(manifest_rel)
            files: dict[str, CommittedFile] = record["files"]
            if current == record and all(self.lake.exists(f["path"]) for f in files.values()):
                return current
            # What the commit may supersede: what is named now, and the earlier layout's files
            # (named only while a manifest of that layout is there).
            before = self._all_named(use_case, day) | {
                layout.store_partition(kind, use_case, day) for kind in ("features", "labels")
            }
            for kind, file in files.items():
                self.lake.move(staged[kind], file["path"])
            if fault_point is not None:
                faults.point(fault_point)
            self.lake.write_json(manifest_rel, record)
            if "labels" in files and manifest_rel == layout.feature_manifest(use_case, day):
                # This day's labels now come with its features: a label manifest of the earlier
                # layout (which committed a batch's labels apart) names nothing any more.
                earlier = self._manifest(layout.label_manifest(use_case, day))
                if earlier is not None and "files" not in earlier:
                    self._remove({layout.label_manifest(use_case, day)})
            self._remove(before - self._all_named(use_case, day))
        return record

    def _remove(self, paths: set[str]) -> None:
        """Best effort: a file left behind is named by no manifest, so no reader reads it."""
        for rel in sorted(paths):
            try:
                self.lake.delete(rel)
            except OSError as exc:
                log.warning(
                    "could not remove %s, which no manifest names any more: %s", self.lake.uri(rel), exc
                )

    # Manifests ---------------------------------------------------------------------------
    def _manifest(self, rel: str) -> dict[str, Any] | None:
        try:
            manifest: dict[str, Any] = self.lake.read_json(rel)
        except FileNotFoundError:
            return None
        return manifest

    def _snapshot(self, use_case: str, day: dt.date) -> _Snapshot:
        """The files a reader reads for ``day``, by kind: those the feature manifest names, and the
        label manifest's labels when the features came without (a label feed)."""
        out: dict[str, _Source] = {}
        features = self._manifest(layout.feature_manifest(use_case, day))
        if features is not None:
            out |= _named(features, "features", use_case, day)
        if "labels" not in out:
            labels = self._manifest(layout.label_manifest(use_case, day))
            if labels is not None:
                out["labels"] = _named(labels, "labels", use_case, day)["labels"]
        return _Snapshot(features, out)

    def _all_named(self, use_case: str, day: dt.date) -> set[str]:
        """Every file a manifest of the day names: what a commit must not remove."""
        named = {s.path for s in self._snapshot(use_case, day).sources.values()}
        labels = self._manifest(layout.label_manifest(use_case, day))
        if labels is not None:
            named |= {s.path for s in _named(labels, "labels", use_case, day).values()}
        return named

    def committed_files(self, use_case: str, day: dt.date) -> dict[str, str]:
        """The files a reader of ``day`` reads now, by kind (``{}``: the day is not committed)."""
        return {kind: source.path for kind, source in self._snapshot(use_case, day).sources.items()}

    # Reads -------------------------------------------------------------------------------
    def _check(self, kind: str, use_case: str, day: dt.date, source: _Source, sha256: str, size: int) -> None:
        if source.sha256 is not None and (sha256 != source.sha256 or size != source.bytes):
            raise PartitionMismatch(
                f"use case {use_case!r}: the {kind} of {day} at {self.lake.uri(source.path)} are not what "
                f"the day's manifest committed (sha256 {sha256[:12]}…, {size} bytes; the manifest "
                f"recorded {source.sha256[:12]}…, {source.bytes} bytes): the file was changed or damaged "
                "after its commit; materialize the day again"
            )

    def _read_source(self, kind: str, use_case: str, day: dt.date, source: _Source) -> pd.DataFrame:
        import pandas as pd

        data = self.lake.read_bytes(source.path)
        self._check(kind, use_case, day, source, hashlib.sha256(data).hexdigest(), len(data))
        frame = pd.read_parquet(io.BytesIO(data))
        if source.rows is not None and len(frame) != source.rows:
            raise PartitionMismatch(
                f"use case {use_case!r}: the {kind} of {day} at {self.lake.uri(source.path)} hold "
                f"{len(frame)} rows where the day's manifest committed {source.rows}"
            )
        return frame

    def _read_committed(self, use_case: str, day: dt.date, read: Callable[[_Snapshot], Any]) -> Any:
        """``read`` the files of the day's commit; when a later commit replaced them meanwhile (a
        named file is gone), read the new commit's instead. The same files committed again (the
        day went back to an earlier delivery) are read again too: their names are their hashes."""
        for attempt in range(READ_TRIES):
            snapshot = self._snapshot(use_case, day)
            try:
                return read(snapshot)
            except FileNotFoundError:
                now = self._snapshot(use_case, day).sources
                replaced = now != snapshot.sources or all(self.lake.exists(s.path) for s in now.values())
                if not replaced or attempt == READ_TRIES - 1:
                    raise  # a file its manifest names is missing
        raise AssertionError("unreachable")

    def read_day(self, use_case: str, day: dt.date) -> CommittedDay | None:
        """The day's commit whole: its manifest, features and labels, from one reading of the
        manifest (``None``: the day is not committed)."""

        def read(snapshot: _Snapshot) -> CommittedDay | None:
            features, labels = snapshot.sources.get("features"), snapshot.sources.get("labels")
            if snapshot.record is None or features is None:
                return None
            return CommittedDay(
                manifest=_feature_partition(snapshot.record),
                features=self._read_source("features", use_case, day, features),
                labels=None if labels is None else self._read_source("labels", use_case, day, labels),
            )

        result: CommittedDay | None = self._read_committed(use_case, day, read)
        return result

    def _read(self, kind: layout.FeatureKind, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        import pandas as pd

        def read(snapshot: _Snapshot) -> pd.DataFrame | None:
            source = snapshot.sources.get(kind)
            return None if source is None else self._read_source(kind, use_case, day, source)

        frames = []
        for day in _days(start, end):
            frame = self._read_committed(use_case, day, read)
            if frame is not None:
                frames.append(frame)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The partition in chunks of at most ``chunk_rows`` rows (memory stays flat); its file is
        checked against the manifest first, in one streaming pass."""
        import pyarrow.parquet as pq

        def open_checked(snapshot: _Snapshot) -> IO[bytes]:
            source = snapshot.sources.get("features")
            if source is None:
                rel = layout.feature_manifest(use_case, interval)
                raise FileNotFoundError(
                    f"use case {use_case!r}: no committed feature partition for {interval} "
                    f"(no manifest at {self.lake.uri(rel)}: run the data DAG for that day)"
                )
            fh = self.lake.open_read(source.path)
            try:
                if source.sha256 is not None:
                    digest, size = hashlib.sha256(), 0
                    while chunk := fh.read(_HASH_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                    self._check("features", use_case, interval, source, digest.hexdigest(), size)
                    fh.seek(0)
            except BaseException:
                fh.close()
                raise
            return fh

        fh: IO[bytes] = self._read_committed(use_case, interval, open_checked)
        with fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()

    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]:
        out = {}
        for name in self.lake.list(layout.feature_manifests_dir(use_case)):
            if name.endswith(".json"):
                day = dt.date.fromisoformat(name.removesuffix(".json"))
                record = self._manifest(layout.feature_manifest(use_case, day))
                if record is not None:
                    out[day] = _feature_partition(record)
        return out
