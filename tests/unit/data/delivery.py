"""A churn delivery through the data tasks as the data DAG runs them: archived, checked, judged."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import yaml

from mlops.core import layout
from mlops.core.config import UseCase, parse_use_case
from mlops.core.lake import Lake
from mlops.core.results import BatchPart
from mlops.data import partitions
from mlops.data.ingest import archive_stream, read_manifest, verify_archived
from mlops.data.tasks import BatchRejected, validate_batch
from mlops.data.validation import derive_suite, suite_path

CONFIG = Path(__file__).resolve().parents[3] / "config"


def churn(partition_mb: float = 0, **expectations: Any) -> UseCase:
    """The churn use case, checked in partitions of ``partition_mb`` (0: whole days), with these
    expectations."""
    raw = yaml.safe_load((CONFIG / "use_cases" / "churn.yaml").read_text())
    raw["source"]["partition_mb"] = partition_mb
    raw.setdefault("expectations", {}).update(expectations)
    return parse_use_case(raw, "churn.yaml")


def archive(
    lake: Lake, day: dt.date, data: bytes, fmt: str = "csv", received_at: str = "t"
) -> dict[str, Any]:
    """Archive ``data`` as churn's delivery of ``day``, as ``extract_and_split`` does; its manifest."""
    return dict(archive_stream(lake, "churn", day, lambda: io.BytesIO(data), fmt, "test", received_at))


def deliver(root: Path, day: dt.date, data: bytes, fmt: str = "csv") -> Lake:
    """A lake at ``root`` holding ``data`` as churn's archived delivery of ``day``."""
    lake = Lake(f"file://{root}")
    archive(lake, day, data, fmt)
    return lake


def archived(lake: Lake, day: dt.date) -> bytes:
    """The current delivery's bytes as the data tasks read them: found by its manifest, its hash
    verified, read whole as one partition."""
    manifest = read_manifest(lake, "churn", day)
    verify_archived(lake, manifest)
    return partitions.read_part(lake, "churn", manifest, BatchPart(index=0, start=0, end=manifest["bytes"]))


def verdict(
    use_case: UseCase, day: dt.date, lake: Lake, config_dir: Path = CONFIG, *, as_of: dt.datetime
) -> dict[str, Any]:
    """The gate's summary of the day (``validate_batch``), whether it passed or was quarantined."""
    try:
        return dict(validate_batch(use_case, day, lake, config_dir, as_of=as_of))
    except BatchRejected:
        return dict(lake.read_json(layout.quarantine_reason("churn", day)))


def suites(root: Path, use_case: UseCase) -> Path:
    """A config folder whose stored suite is the one this use case's settings imply."""
    config = root / "config"
    suite_path(config, "churn").parent.mkdir(parents=True, exist_ok=True)
    suite_path(config, "churn").write_text(json.dumps(derive_suite(use_case)))
    return config
