from __future__ import annotations

import datetime as dt
import inspect

import pytest

from mlops.core import layout

DAY = dt.date(2026, 1, 3)


def test_paths_are_keyed_by_use_case_and_day() -> None:
    assert layout.raw_object("churn", DAY, "ab12", "csv") == "raw/churn/2026-01-03/ab12.csv"
    assert layout.raw_manifest("churn", "2026-01-03") == "raw/churn/2026-01-03/_manifest.json"
    assert layout.quarantine_reason("churn", DAY) == "quarantine/churn/2026-01-03/reason.json"
    assert layout.store_partition("labels", "churn", DAY) == "labels/churn/2026-01-03.parquet"
    assert layout.predictions_file("churn", DAY).startswith(layout.predictions_dir("churn", DAY) + "/")
    assert layout.alert_record("churn", "sent", "drift-1") == layout.alert_record(
        "churn", "sent", "drift-1.json"
    )
    assert layout.serving_batch("churn", DAY, "b1") == "serving/churn/2026-01-03/b1.parquet"
    assert layout.serving_manifest("churn", DAY, "b1") == "serving/churn/2026-01-03/_manifests/b1.json"


def test_promotion_records_sort_by_decision_time() -> None:
    early = layout.promotion_record("churn", "2026-01-03T09:00:00.000001+00:00", "10")
    late = layout.promotion_record("churn", "2026-01-03T10:00:00.000001+00:00", "2")
    assert early < late and ":" not in early


BUILDERS = [
    pytest.param(fn, id=name)
    for name, fn in inspect.getmembers(layout, inspect.isfunction)
    if not name.startswith("_") and fn.__module__ == layout.__name__
]


@pytest.mark.parametrize("builder", BUILDERS)
def test_every_path_is_relative_and_separates_use_cases(builder) -> None:
    params = inspect.signature(builder).parameters
    sample = {"use_case": "churn", "day": DAY, "fmt": "csv", "sha256": "ab", "run_key": "k", "split": "train",
              "decided_at": "2026-01-03T00:00:00", "version": "1", "scope": "churn", "box": "sent",
              "alert_id": "a", "kind": "features", "dag_id": "churn_data", "attempt": 1,
              "airflow_run_id": "manual__2026-01-03T00:00:00+00:00", "batch": "20260103T000000-ab12", "index": 3, "token": "t"}  # fmt: skip
    path = builder(**{name: sample[name] for name in params})
    assert not path.startswith("/") and ".." not in path.split("/")
    if "use_case" in params:
        assert "churn" in path.split("/")[1:3] or path.split("/")[1].startswith("churn")
        assert builder(**{name: sample[name] for name in params} | {"use_case": "other"}) != path
