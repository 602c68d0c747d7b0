"""The data half of the platform as plain functions, one per task of the ``<use_case>_data`` DAG.

extract_and_archive -> validate_batch -> materialize_features. Each takes a use case and an
interval (a day), reads its inputs from the lake, writes its outputs atomically and returns a
short JSON-able summary for XCom. All are safe to run twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from mlops.core import faults, layout
from mlops.core.config import FeedKind, UseCase
from mlops.core.lake import Lake
from mlops.core.results import FeaturePartition, LabelPartition, RawManifest, ValidationSummary
from mlops.data.feature_store import FeatureStore
from mlops.data.features import build_features, delivered_labels, extract_labels
from mlops.data.ingest import archive_stream, landed_at, open_batch, read_archived
from mlops.data.validation import (
    BatchUnreadable,
    event_time_window,
    load_suite,
    read_batch,
    unreadable_outcome,
    validate_frame,
)

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
    manifest = archive_stream(lake, source.stream, interval, opener, fmt, origin, received, landed_at(source, interval, landing_uri))
    log.info("archived %s bytes of %s for %s at %s", manifest["bytes"], source.stream, interval, manifest["uri"])
    return manifest


def validate_batch(
    use_case: UseCase,
    interval: dt.date,
    lake: Lake,
    config_dir: Path,
    *,
    as_of: dt.datetime | None = None,
    feed: FeedKind = "batch",
) -> ValidationSummary:
    """Validate one archived delivery; quarantine it and raise BatchRejected if an error expectation fails.

    ``as_of`` is when the run started (default: now): no event may be later than that.
    """
    source = use_case.feed(feed)
    data, manifest = read_archived(lake, source.stream, interval)
    suite = load_suite(config_dir, source)
    tolerance = source.expectations.event_time_tolerance_hours
    window = event_time_window(interval, tolerance, as_of or dt.datetime.now(dt.UTC), days_before=source.days_before)
    try:
        frame = read_batch(data, source, manifest["format"])
    except BatchUnreadable as exc:
        outcome = unreadable_outcome(str(exc))
    else:
        outcome = validate_frame(frame, suite, parameters=window)

    name = source.stream
    summary = outcome.summary(use_case=use_case.name, interval=interval.isoformat(), sha256=manifest["sha256"])
    if outcome.result is not None:
        lake.write_json(layout.validation_result(name, interval), outcome.result)
    if outcome.data_docs_html:
        summary["data_docs_uri"] = lake.write_bytes(layout.validation_docs(name, interval), outcome.data_docs_html.encode())
    lake.write_json(layout.validation_summary(name, interval), summary)

    for warning in outcome.warnings:
        log.warning("use case %r, batch %s: %s", use_case.name, interval, warning.describe())
    quarantine = layout.quarantine_dir(name, interval)
    if outcome.passed:
        lake.delete(quarantine)  # an earlier rejected delivery stays in the raw archive under its hash
        log.info("batch %s of %r passed %d expectations", interval, name, outcome.evaluated)
        return summary

    fmt = manifest["format"]
    lake.copy(layout.raw_object(name, interval, manifest["sha256"], fmt), layout.quarantine_batch(name, interval, fmt))
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


def _validated(use_case: UseCase, feed: FeedKind, interval: dt.date, lake: Lake) -> tuple[bytes, RawManifest]:
    """The archived delivery of a feed, only if the gate passed these very bytes."""
    stream = use_case.feed(feed).stream
    data, manifest = read_archived(lake, stream, interval)
    summary: ValidationSummary = lake.read_json(layout.validation_summary(stream, interval))
    if not summary["passed"] or summary["sha256"] != manifest["sha256"]:
        what, task = ("batch", "validate_batch") if feed == "batch" else ("label delivery", "validate_labels")
        raise BatchRejected(
            f"use case {use_case.name!r}: {what} {interval} has not passed validation "
            f"(or was re-delivered since); run {task} first"
        )
    return data, manifest


def materialize_features(use_case: UseCase, interval: dt.date, lake: Lake, store: FeatureStore) -> FeaturePartition:
    data, manifest = _validated(use_case, "batch", interval, lake)
    frame = read_batch(data, use_case, manifest["format"])
    features = build_features(frame, use_case)
    # Labels in the batch are stored with it; a label feed's are stored by store_labels.
    labels = extract_labels(frame, use_case) if use_case.schema_.target else None
    result = store.write_partition(use_case.name, interval, features, labels, use_case.feature_version)
    log.info("materialized %d feature rows for %r %s", result["rows"], use_case.name, interval)
    return result


def refresh_stale_features(use_case: UseCase, days: list[dt.date], lake: Lake, store: FeatureStore) -> list[dt.date]:
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
    """Put the labels delivered on ``interval`` (validated) into the label table, known from the end of that day."""
    source = use_case.feed("labels")
    data, manifest = _validated(use_case, "labels", interval, lake)
    labels = delivered_labels(read_batch(data, source, manifest["format"]), use_case, interval)
    result = store.write_labels(use_case.name, interval, labels)
    log.info("stored %d labels of %r delivered on %s", result["rows"], use_case.name, interval)
    return result
