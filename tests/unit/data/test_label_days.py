"""A day on which no label arrived: a delivery with a header and no rows is a valid, empty day."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.core import layout
from mlops.core.config import UseCase, load_use_case_file
from mlops.core.lake import Lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.ingest import archive_stream
from mlops.data.tasks import BatchRejected, store_labels, validate_batch
from mlops.data.validation import derive_suite, suite_path
from tests.unit.core.test_config_labels import label_feed_config

DAY = dt.date(2026, 5, 2)
AS_OF = dt.datetime(2026, 5, 3, 1, tzinfo=dt.UTC)
HEADER_ONLY = b"customer_id,event_time,churned\n"


def config_of(home: Path, raw: dict[str, Any]) -> Path:
    """A config folder holding the use case ``raw`` and the suites of its feeds."""
    config = home / "config"
    (config / "use_cases").mkdir(parents=True, exist_ok=True)
    (config / "expectations").mkdir(exist_ok=True)
    path = config / "use_cases" / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    for feed in load_use_case_file(path).feeds:
        suite_path(config, feed.stream).write_text(json.dumps(derive_suite(feed)))
    return config


def deliver_labels(tmp_path: Path, data: bytes, **expectations: Any) -> tuple[UseCase, Lake, Path]:
    raw = label_feed_config()
    raw["labels"]["expectations"] = expectations
    config = config_of(tmp_path, raw)
    use_case = load_use_case_file(config / "use_cases" / "churn.yaml")
    lake = Lake(f"file://{tmp_path}/lake")
    archive_stream(lake, "churn.labels", DAY, lambda: io.BytesIO(data), "csv", "test", "t")
    return use_case, lake, config


def test_a_delivery_with_a_header_and_no_rows_is_stored_as_zero_labels(tmp_path: Path) -> None:
    use_case, lake, config = deliver_labels(tmp_path, HEADER_ONLY)
    summary = validate_batch(use_case, DAY, lake, config, feed="labels", as_of=AS_OF)
    assert (summary["passed"], summary["rows"], summary["errors"]) == (True, 0, [])
    assert not lake.exists(layout.quarantine_reason("churn.labels", DAY))

    store = ParquetFeatureStore(lake)
    stored = store_labels(use_case, DAY, lake, store)
    assert stored["rows"] == 0
    # The day reads as delivered and empty, not missing.
    assert lake.read_json(layout.label_manifest("churn", DAY))["rows"] == 0
    assert store.read_labels("churn", DAY, DAY).empty


def test_a_use_case_that_expects_labels_every_day_quarantines_an_empty_one(tmp_path: Path) -> None:
    use_case, lake, config = deliver_labels(tmp_path, HEADER_ONLY, min_rows=1)
    with pytest.raises(BatchRejected, match="expect_table_row_count_to_be_between: observed 0"):
        validate_batch(use_case, DAY, lake, config, feed="labels", as_of=AS_OF)
    assert lake.exists(layout.quarantine_reason("churn.labels", DAY))
    assert not lake.exists(layout.label_manifest("churn", DAY))


def test_labels_are_checked_as_before_when_rows_arrive(tmp_path: Path) -> None:
    rows = HEADER_ONLY + b"17,2026-05-01T10:00:00,1\n18,2026-05-01T11:00:00,0\n"
    use_case, lake, config = deliver_labels(tmp_path, rows)
    assert validate_batch(use_case, DAY, lake, config, feed="labels", as_of=AS_OF)["rows"] == 2
    assert store_labels(use_case, DAY, lake, ParquetFeatureStore(lake))["rows"] == 2
