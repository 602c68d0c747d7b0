"""The data half of the platform as plain functions, one per task of the ``<use_case>_data`` DAG.

extract_and_archive -> validate_batch -> materialize_features. Each takes a use case and an
interval (a day), reads its inputs from the lake, writes its outputs atomically and returns a
short JSON-able summary for XCom. All are safe to run twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from mlops.core.config import UseCase
from mlops.core.lake import Lake
from mlops.data.feature_store import FeatureStore
from mlops.data.features import build_features, extract_labels
from mlops.data.ingest import archive_batch, fetch_batch, raw_prefix, read_archived
from mlops.data.validation import BatchUnreadable, load_suite, read_batch, unreadable_outcome, validate_frame

log = logging.getLogger(__name__)


class BatchRejected(RuntimeError):
    """The validation gate failed the batch; it is quarantined and no features are written."""


def extract_and_archive(use_case: UseCase, interval: dt.date, lake: Lake, landing_uri: str) -> dict[str, Any]:
    data, fmt, source = fetch_batch(use_case, interval, landing_uri)
    received = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest = archive_batch(lake, use_case.name, interval, data, fmt, source, received)
    log.info("archived %s bytes of %s for %s at %s", manifest["bytes"], use_case.name, interval, manifest["uri"])
    return manifest


def quarantine_prefix(use_case: str, interval: dt.date) -> str:
    return f"quarantine/{use_case}/{interval.isoformat()}"


def validation_prefix(use_case: str, interval: dt.date) -> str:
    return f"validation/{use_case}/{interval.isoformat()}"


def validate_batch(use_case: UseCase, interval: dt.date, lake: Lake, config_dir: Any) -> dict[str, Any]:
    """Validate the archived batch; quarantine it and raise BatchRejected if an error expectation fails."""
    data, manifest = read_archived(lake, use_case.name, interval)
    suite = load_suite(config_dir, use_case)
    try:
        frame = read_batch(data, use_case, manifest["format"])
    except BatchUnreadable as exc:
        outcome = unreadable_outcome(str(exc))
    else:
        outcome = validate_frame(frame, suite)

    summary = outcome.summary() | {"use_case": use_case.name, "interval": interval.isoformat(), "sha256": manifest["sha256"]}
    vprefix = validation_prefix(use_case.name, interval)
    if outcome.result is not None:
        lake.write_json(f"{vprefix}/validation_result.json", outcome.result)
    if outcome.data_docs_html:
        summary["data_docs_uri"] = lake.write_bytes(f"{vprefix}/data_docs.html", outcome.data_docs_html.encode())
    lake.write_json(f"{vprefix}/summary.json", summary)

    for warning in outcome.warnings:
        log.warning("use case %r, batch %s: %s", use_case.name, interval, warning.describe())
    qprefix = quarantine_prefix(use_case.name, interval)
    if outcome.passed:
        lake.delete(qprefix)  # an earlier rejected delivery of this interval stays in raw/_superseded
        log.info("batch %s of %r passed %d expectations", interval, use_case.name, outcome.evaluated)
        return summary

    lake.copy(f"{raw_prefix(use_case.name, interval)}/batch.{manifest['format']}", f"{qprefix}/batch.{manifest['format']}")
    if outcome.result is not None:
        lake.write_json(f"{qprefix}/validation_result.json", outcome.result)
    if outcome.data_docs_html:
        lake.write_bytes(f"{qprefix}/data_docs.html", outcome.data_docs_html.encode())
    summary["quarantine_uri"] = lake.uri(qprefix)
    lake.write_json(f"{qprefix}/reason.json", summary)  # written last: marks the quarantine complete
    lines = "\n".join(f"  - {f.describe()}" for f in outcome.errors)
    raise BatchRejected(
        f"use case {use_case.name!r}: batch {interval} failed validation and was quarantined at "
        f"{lake.uri(qprefix)}:\n{lines}"
    )


def materialize_features(use_case: UseCase, interval: dt.date, lake: Lake, store: FeatureStore) -> dict[str, Any]:
    data, manifest = read_archived(lake, use_case.name, interval)
    summary = lake.read_json(f"{validation_prefix(use_case.name, interval)}/summary.json")
    if not summary["passed"] or summary["sha256"] != manifest["sha256"]:
        raise BatchRejected(
            f"use case {use_case.name!r}: batch {interval} has not passed validation "
            "(or was re-delivered since); run validate_batch first"
        )
    frame = read_batch(data, use_case, manifest["format"])
    features = build_features(frame, use_case)
    labels = extract_labels(frame, use_case)
    result = store.write_partition(use_case.name, interval, features, labels)
    log.info("materialized %d feature rows for %r %s", result["rows"], use_case.name, interval)
    return result
