"""The data half of the platform as plain functions, one per task of the ``<use_case>_data`` DAG.

extract_and_split -> check_partition (mapped) -> validate_batch -> materialize_features (and,
for a label feed, store_labels). Each takes a use case and an interval (a day), reads its inputs
from the lake, writes its outputs atomically and returns a short JSON-able summary for XCom. All
are safe to run twice. ``validate_batch`` without the checks splits and checks the day itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.config import Feed, FeedKind, UseCase
from mlops.core.lake import Lake
from mlops.core.results import (
    BatchPart,
    FeaturePartition,
    LabelPartition,
    PartCheck,
    RawManifest,
    ValidationSummary,
)
from mlops.data import partitions
from mlops.data.feature_store import FeatureStore, Rows
from mlops.data.features import build_features, delivered_labels, extract_labels
from mlops.data.ingest import archive_stream, landed_at, open_batch, read_manifest, verify_archived
from mlops.data.parsing import BatchUnreadable, read_batch
from mlops.data.validation import (
    evaluate,
    event_time_window,
    event_times_seen,
    load_suite,
    outcome_from_result,
    render_data_docs,
    unreadable_outcome,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)


class BatchRejected(RuntimeError):
    """The validation gate failed the batch; it is quarantined and no features are written."""


def extract_and_archive(
    use_case: UseCase, interval: dt.date, lake: Lake, landing_uri: str, *, feed: FeedKind = "batch"
) -> RawManifest:
    """Fetch one day of a feed (the batches, or the label feed) and archive it unmodified."""
    source = use_case.feed(feed)
    opener, fmt, origin = open_batch(source, interval, landing_uri)
    received = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest = archive_stream(
        lake, source.stream, interval, opener, fmt, origin, received, landed_at(source, interval, landing_uri)
    )
    log.info(
        "archived %s bytes of %s for %s at %s", manifest["bytes"], source.stream, interval, manifest["uri"]
    )
    return manifest


def split_batch(
    use_case: UseCase, interval: dt.date, lake: Lake, *, feed: FeedKind = "batch"
) -> list[BatchPart]:
    """The partitions a day's archived delivery is checked in (one, unless it is larger than
    ``source.partition_mb``); the object's hash is verified on the way."""
    manifest = read_manifest(lake, use_case.feed(feed).stream, interval)
    verify_archived(lake, manifest)
    return _split(lake, use_case.feed(feed), manifest)


def _split(lake: Lake, source: Feed, manifest: RawManifest) -> list[BatchPart]:
    parts = partitions.split(lake, source.stream, manifest, int(source.source.partition_mb * 2**20))
    if len(parts) > 1:
        log.info(
            "%s %s: %d bytes in %d partitions",
            source.stream,
            manifest["interval"],
            manifest["bytes"],
            len(parts),
        )
    return parts


def extract_and_split(
    use_case: UseCase, interval: dt.date, lake: Lake, landing_uri: str, *, feed: FeedKind = "batch"
) -> list[BatchPart]:
    """Archive a day's delivery and cut it into the partitions it is checked in, in one task.

    The bytes archived now were hashed as they were copied, so they are not read again; a day
    whose same bytes were archived before is verified against its hash first.
    """
    stream = use_case.feed(feed).stream
    before = (
        read_manifest(lake, stream, interval)["sha256"]
        if lake.exists(layout.raw_manifest(stream, interval))
        else None
    )
    manifest = extract_and_archive(use_case, interval, lake, landing_uri, feed=feed)
    if manifest["sha256"] == before:
        verify_archived(lake, manifest)
    return _split(lake, use_case.feed(feed), manifest)


def check_partition(
    use_case: UseCase,
    interval: dt.date,
    lake: Lake,
    config_dir: Path,
    part: BatchPart,
    *,
    as_of: dt.datetime | None = None,
    feed: FeedKind = "batch",
    store: FeatureStore | None = None,
) -> PartCheck:
    """Parse one partition once and check it against the suite; safe to run twice.

    Its result goes to the lake; to staging (Arrow IPC, LZ4) go its keys (for the day's
    key-uniqueness check) and, when it passed, what the next tasks would otherwise parse the CSV
    again for: a batch's features and labels, built here so that the workers share that work too,
    or a label delivery's parsed rows. A batch's features and labels are also handed to
    ``store`` ahead of the commit (``FeatureStore.stage_part``), which may take them in here.

    ``as_of`` is when the check started (default: now): no event may be later than that.
    """
    source = use_case.feed(feed)
    as_of = as_of or dt.datetime.now(dt.UTC)
    manifest = read_manifest(lake, source.stream, interval)
    sha = manifest["sha256"]
    suite = load_suite(config_dir, source)
    window = _window(source, interval, as_of)
    record: dict[str, Any] = {**part, "as_of": as_of.isoformat()}
    try:
        frame = read_batch(
            partitions.read_part(lake, source.stream, manifest, part), source, manifest["format"]
        )
    except BatchUnreadable as exc:
        record |= {"readable": False, "rows": 0, "reason": str(exc)}
    else:
        result = evaluate(frame, partitions.part_suite(suite), window)
        seen = event_times_seen(frame, suite)
        record |= {"readable": True, "rows": len(frame), "result": result, "event_times_seen": seen}
        staged = functools.partial(layout.staged_part, source.stream, interval, sha, part["index"])
        keys = [source.entity, source.event_time]
        if all(key in frame for key in keys):
            _stage(lake, staged("keys"), partitions.key_table(frame, keys))
        if _passed(result):
            if feed == "labels":
                _stage(lake, staged("rows"), _arrow(frame))
            else:
                features, labels = _built(frame, use_case)
                version = use_case.feature_version
                _stage(lake, staged("features"), features.staged(), feature_version=version)
                if labels is not None:
                    _stage(lake, staged("labels"), labels.staged(), feature_version=version)
                if store is not None:
                    store.stage_part(use_case.name, interval, part["index"], features, labels)
    lake.write_json(layout.validation_part(source.stream, interval, sha, part["index"]), record)
    passed = record["readable"] and _passed(record["result"])
    return PartCheck(index=part["index"], rows=record["rows"], passed=passed, readable=record["readable"])


def _passed(result: dict[str, Any]) -> bool:
    """No expectation of severity ``error`` failed."""
    return all(
        item["success"]
        for item in result["results"]
        if (item["expectation_config"].get("meta") or {}).get("severity", "error") == "error"
    )


def _built(frame: pd.DataFrame, use_case: UseCase) -> tuple[Rows, Rows | None]:
    """A batch's feature rows, and its label rows when the batch carries its labels."""
    labels = Rows.of(extract_labels(frame, use_case)) if use_case.schema_.target else None
    return Rows.of(build_features(frame, use_case)), labels


def _arrow(frame: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


FEATURE_VERSION_KEY = b"mlops.feature_version"


def _stage(lake: Lake, rel: str, table: pa.Table, *, feature_version: str | None = None) -> None:
    """Write a table to staging as Arrow IPC (LZ4), with the feature code version that built it."""
    import pyarrow.feather as feather

    if feature_version is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), FEATURE_VERSION_KEY: feature_version.encode()}
        )
    lake.write_with(rel, lambda fh: feather.write_feather(table, fh, compression="lz4"))


def _unstaged(table: pa.Table) -> Rows:
    """Staged rows as they were built: without the staging's own metadata (the store's files are
    the same whether the rows were staged or built again from the archive)."""
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != FEATURE_VERSION_KEY}
    return Rows.from_staged(table.replace_schema_metadata(meta))


def _staged(lake: Lake, rel: str, columns: list[str] | None = None) -> pa.Table | None:
    """A staged table (None if there is none)."""
    return _read_staged(lake, rel, columns) if lake.exists(rel) else None


def _read_staged(lake: Lake, rel: str, columns: list[str] | None = None) -> pa.Table:
    import pyarrow.feather as feather

    with lake.open_read(rel) as fh:
        return feather.read_table(fh, columns=columns)


def _window(source: Feed, interval: dt.date, as_of: dt.datetime) -> dict[str, Any]:
    tolerance = source.expectations.event_time_tolerance_hours
    return event_time_window(interval, tolerance, as_of, days_before=source.days_before)


def validate_batch(
    use_case: UseCase,
    interval: dt.date,
    lake: Lake,
    config_dir: Path,
    *,
    as_of: dt.datetime | None = None,
    feed: FeedKind = "batch",
    checks: list[PartCheck] | None = None,
) -> ValidationSummary:
    """The gate's verdict on one archived delivery; quarantine it and raise BatchRejected if an error expectation fails.

    ``checks`` are the day's partition checks (mapped tasks); without them the day is split and
    checked here, partition by partition. ``as_of`` is when the run started (default: now): no
    event may be later than that.
    """
    source = use_case.feed(feed)
    if checks is None:
        checks = [
            check_partition(use_case, interval, lake, config_dir, part, as_of=as_of, feed=feed)
            for part in split_batch(use_case, interval, lake, feed=feed)
        ]
    name = source.stream
    manifest = read_manifest(lake, name, interval)
    sha = manifest["sha256"]
    records = [
        lake.read_json(layout.validation_part(name, interval, sha, c["index"]))
        for c in sorted(checks, key=lambda c: c["index"])
    ]
    if [r["index"] for r in records] != list(range(len(records))):
        raise ValueError(
            f"{name} {interval}: partition checks {[r['index'] for r in records]} are not the partitions 0..{len(records) - 1}"
        )
    parts = [BatchPart(index=r["index"], start=r["start"], end=r["end"]) for r in records]
    unreadable = next((r for r in records if not r["readable"]), None)
    if unreadable is not None:
        where = (
            ""
            if len(records) == 1
            else f"partition {unreadable['index'] + 1} of {len(records)} (bytes {unreadable['start']}..{unreadable['end']}): "
        )
        outcome = unreadable_outcome(where + unreadable["reason"])
    else:
        suite = load_suite(config_dir, source)
        duplicates = None
        if len(records) > 1:
            staged = [layout.staged_part(name, interval, sha, p["index"], "keys") for p in parts]
            if all(lake.exists(rel) for rel in staged):  # else a key column is missing: the suite says so

                def read_keys(columns: list[str]) -> Iterator[pa.Table]:
                    return (_read_staged(lake, rel, columns) for rel in staged)

                duplicates = partitions.duplicate_keys(read_keys, [source.entity, source.event_time])
        result = partitions.combine_results(
            suite, [r["result"] for r in records], [r["rows"] for r in records], duplicates
        )
        seen = partitions.seen_range([r.get("event_times_seen") for r in records])
        checked_at = min(dt.datetime.fromisoformat(r["as_of"]) for r in records)  # the window the checks used
        outcome = outcome_from_result(
            result,
            sum(r["rows"] for r in records),
            parameters=_window(source, interval, checked_at),
            event_times_seen=seen,
        )
        outcome.data_docs_html = render_data_docs(result)

    summary = outcome.summary(use_case=use_case.name, interval=interval.isoformat(), sha256=sha)
    summary["parts"] = parts
    if outcome.result is not None:
        lake.write_json(layout.validation_result(name, interval), outcome.result)
    if outcome.data_docs_html:
        summary["data_docs_uri"] = lake.write_bytes(
            layout.validation_docs(name, interval), outcome.data_docs_html.encode()
        )
    lake.write_json(layout.validation_summary(name, interval), summary)

    for warning in outcome.warnings:
        log.warning("use case %r, batch %s: %s", use_case.name, interval, warning.describe())
    quarantine = layout.quarantine_dir(name, interval)
    if outcome.passed:
        lake.delete(quarantine)  # an earlier rejected delivery stays in the raw archive under its hash
        log.info(
            "batch %s of %r passed %d expectations (%d rows, %d partitions)",
            interval,
            name,
            outcome.evaluated,
            outcome.rows,
            len(parts),
        )
        return summary

    lake.delete(layout.parsed_parts_dir(name, interval))  # nothing will read them
    fmt = manifest["format"]
    lake.copy(layout.raw_object(name, interval, sha, fmt), layout.quarantine_batch(name, interval, fmt))
    if outcome.result is not None:
        lake.write_json(layout.quarantine_result(name, interval), outcome.result)
    if outcome.data_docs_html:
        lake.write_bytes(layout.quarantine_docs(name, interval), outcome.data_docs_html.encode())
    summary["quarantine_uri"] = lake.uri(quarantine)
    faults.point("quarantine")
    lake.write_json(layout.quarantine_reason(name, interval), summary)  # written last: marks it complete
    lines = "\n".join(f"  - {f.describe()}" for f in outcome.errors)
    what = "batch" if feed == "batch" else "label delivery"
    raise BatchRejected(
        f"use case {use_case.name!r}: {what} {interval} failed validation and was quarantined at {lake.uri(quarantine)}:\n{lines}"
    )


def _validated(
    use_case: UseCase, feed: FeedKind, interval: dt.date, lake: Lake
) -> tuple[ValidationSummary, RawManifest]:
    """The gate's verdict on the current delivery of a feed, only if it passed these very bytes."""
    stream = use_case.feed(feed).stream
    manifest = read_manifest(lake, stream, interval)
    summary: ValidationSummary = lake.read_json(layout.validation_summary(stream, interval))
    if not summary["passed"] or summary["sha256"] != manifest["sha256"]:
        what, task = ("batch", "validate_batch") if feed == "batch" else ("label delivery", "validate_labels")
        raise BatchRejected(
            f"use case {use_case.name!r}: {what} {interval} has not passed validation "
            f"(or was re-delivered since); run {task} first"
        )
    return summary, manifest


def _day_parts(
    use_case: UseCase, feed: FeedKind, interval: dt.date, lake: Lake
) -> tuple[RawManifest, list[BatchPart]]:
    """The validated delivery and the partitions it was checked in."""
    summary, manifest = _validated(use_case, feed, interval, lake)
    parts = summary.get("parts") or [BatchPart(index=0, start=0, end=manifest["bytes"])]
    if "parts" not in summary or (len(parts) == 1 and parts[0]["end"] == manifest["bytes"]):
        verify_archived(lake, manifest)
    return manifest, parts


def _parse_part(
    use_case: UseCase, feed: FeedKind, lake: Lake, manifest: RawManifest, part: BatchPart
) -> pd.DataFrame:
    source = use_case.feed(feed)
    return read_batch(partitions.read_part(lake, source.stream, manifest, part), source, manifest["format"])


def _day_rows(use_case: UseCase, interval: dt.date, lake: Lake) -> Iterator[tuple[Rows, Rows | None]]:
    """The validated batch's feature (and label) rows, partition by partition: as its checks built
    them (staging), or built again from the raw archive when staging is gone (a retry after the
    commit, a rebuild) or was built by other feature code."""
    stream = use_case.feed("batch").stream
    manifest, parts = _day_parts(use_case, "batch", interval, lake)
    with_labels = bool(use_case.schema_.target)
    for part in parts:
        staged = functools.partial(layout.staged_part, stream, interval, manifest["sha256"], part["index"])
        features = _staged(lake, staged("features"))
        labels = _staged(lake, staged("labels")) if with_labels else None
        built_by = (
            None
            if features is None
            else (features.schema.metadata or {}).get(FEATURE_VERSION_KEY, b"").decode()
        )
        if (
            features is not None
            and built_by == use_case.feature_version
            and (labels is not None or not with_labels)
        ):
            yield _unstaged(features), None if labels is None else _unstaged(labels)
        else:
            yield _built(_parse_part(use_case, "batch", lake, manifest, part), use_case)


def materialize_features(
    use_case: UseCase, interval: dt.date, lake: Lake, store: FeatureStore
) -> FeaturePartition:
    """Commit the day's features (and the labels a batch carries) in the store at once, partition
    by partition as the checks built them; then drop the staging."""
    with_labels = bool(use_case.schema_.target)  # a label feed's labels are stored by store_labels
    result = store.write_partition_parts(
        use_case.name,
        interval,
        _day_rows(use_case, interval, lake),
        use_case.feature_version,
        with_labels=with_labels,
    )
    lake.delete(layout.parsed_parts_dir(use_case.feed("batch").stream, interval))
    log.info("materialized %d feature rows for %r %s", result["rows"], use_case.name, interval)
    return result


def refresh_stale_features(
    use_case: UseCase, days: list[dt.date], lake: Lake, store: FeatureStore
) -> list[dt.date]:
    """Rebuild, from the raw archive, the partitions among ``days`` built by other feature code.

    A partition records the feature version it was built with; after a feature's definition or
    code changes, training and scoring must not mix old and new features, so the days they are
    about to read are rebuilt first (same validated raw bytes, the current code). Returns them.
    """
    current = use_case.feature_version
    committed = store.partitions(use_case.name)
    stale = [day for day in days if day in committed and committed[day].get("feature_version") != current]
    for day in stale:
        log.info("features of %r %s were built by other feature code (%s); rebuilding them as %s",
                 use_case.name, day, committed[day].get("feature_version", "unversioned"), current)  # fmt: skip
        materialize_features(use_case, day, lake, store)
    return stale


def store_labels(use_case: UseCase, interval: dt.date, lake: Lake, store: FeatureStore) -> LabelPartition:
    """Put the labels delivered on ``interval`` (validated) into the label table, known from the end
    of that day.

    A delivery with a header and no rows (no label arrived that day) passes the gate unless
    ``labels.expectations.min_rows`` is above 0; it is stored as a day of zero labels, with its
    manifest, so the day reads as delivered and empty rather than missing.
    """
    import pandas as pd

    stream = use_case.feed("labels").stream
    manifest, parts = _day_parts(use_case, "labels", interval, lake)
    frames = []
    for part in parts:
        staged = _staged(
            lake, layout.staged_part(stream, interval, manifest["sha256"], part["index"], "rows")
        )
        frames.append(
            _parse_part(use_case, "labels", lake, manifest, part) if staged is None else staged.to_pandas()
        )
    frame = pd.concat(frames, ignore_index=True)
    labels = delivered_labels(frame, use_case, interval)
    result = store.write_labels(use_case.name, interval, labels)
    lake.delete(layout.parsed_parts_dir(use_case.feed("labels").stream, interval))
    if result["rows"]:
        log.info("stored %d labels of %r delivered on %s", result["rows"], use_case.name, interval)
    else:
        log.info("no label of %r arrived on %s: stored an empty label day", use_case.name, interval)
    return result
