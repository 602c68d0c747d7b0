"""The data DAG end to end with dag.test(): archive, validation gate, quarantine, feature store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from mlops.core import layout
from mlops.core.lake import get_lake, sha256
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.features import ENTITY, EVENT_TIME
from mlops.dev.simulator import BAD_BATCH_KINDS
from tests.e2e.helpers import land, load_dags, run_dag

pytestmark = pytest.mark.slow
START = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def dags(airflow_db: Path) -> dict:
    return load_dags()


@pytest.mark.parametrize("use_case", ["churn", "delivery_time"])
def test_consecutive_intervals_and_idempotent_rerun(dags: dict, fresh_home: Path, use_case: str) -> None:
    lake = get_lake()
    store = ParquetFeatureStore(lake)
    days = [START + dt.timedelta(days=i) for i in range(3)]
    landed = {day: land(use_case, day, rows=300) for day in days}
    for day in days:
        assert run_dag(dags[f"{use_case}_data"], day).state == "success"

    for day in days:
        manifest = lake.read_json(layout.raw_manifest(use_case, day))
        assert manifest["sha256"] == sha256(landed[day])
        assert (
            lake.read_bytes(layout.raw_object(use_case, day, manifest["sha256"], manifest["format"]))
            == landed[day]
        )  # unmodified
        assert lake.read_json(layout.validation_summary(use_case, day))["passed"] is True
    feats = store.read_features(use_case, days[0], days[-1])
    assert len(feats) == 900
    assert not feats.duplicated([ENTITY, EVENT_TIME]).any()

    before = {d: lake.read_bytes(store.committed_files(use_case, d)["features"]) for d in days}
    manifests = {d: lake.read_json(layout.feature_manifest(use_case, d)) for d in days}
    assert run_dag(dags[f"{use_case}_data"], days[1]).state == "success"  # re-run one interval
    assert lake.read_bytes(store.committed_files(use_case, days[1])["features"]) == before[days[1]]
    assert lake.read_json(layout.feature_manifest(use_case, days[1])) == manifests[days[1]]
    assert len(store.read_features(use_case, days[0], days[-1])) == 900
    fmt = "csv" if use_case == "churn" else "parquet"
    assert lake.list(layout.raw_dir(use_case, days[1])) == sorted(
        [layout.MANIFEST, f"{sha256(landed[days[1]])}.{fmt}"]
    )


EXPECTED_FAILURE = {
    "missing_column": "expect_table_columns_to_match_set",
    "extra_column": "expect_table_columns_to_match_set",
    "wrong_type": "expect_column_values_to_be_in_type_list",
    "nulls": "expect_column_values_to_not_be_null",
    "out_of_range": "expect_column_values_to_be_between",
    "unknown_category": "expect_column_values_to_be_in_set",
    "duplicate_keys": "expect_compound_columns_to_be_unique",
    "empty_file": "batch_is_readable",
    "unreadable_file": "batch_is_readable",
}


def test_every_bad_batch_kind_is_quarantined_with_a_named_reason(dags: dict, fresh_home: Path) -> None:
    assert set(EXPECTED_FAILURE) == set(BAD_BATCH_KINDS)
    lake = get_lake()
    for i, kind in enumerate(BAD_BATCH_KINDS):
        day = START + dt.timedelta(days=10 + i)
        landed = land("churn", day, rows=200, bad=kind)
        run = run_dag(dags["churn_data"], day)
        assert run.state == "failed", kind
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states["validate_batch"] == "failed", kind
        assert states["materialize_features"] == "upstream_failed", kind
        reason = lake.read_json(layout.quarantine_reason("churn", day))
        names = [e["expectation"] for e in reason["errors"]]
        assert EXPECTED_FAILURE[kind] in names, (kind, names)
        assert all(e["text"] for e in reason["errors"])
        assert lake.read_bytes(layout.quarantine_batch("churn", day, "csv")) == landed
        assert (
            lake.read_bytes(layout.raw_object("churn", day, sha256(landed), "csv")) == landed
        )  # the archive keeps it
        assert not lake.exists(layout.feature_manifest("churn", day))  # nothing was committed
        if kind not in {"empty_file", "unreadable_file"}:
            assert lake.exists(layout.quarantine_result("churn", day))
            assert "<html" in lake.read_bytes(layout.quarantine_docs("churn", day)).decode().lower()
    # Each failed run left one failure alert: no Slack configured in this test, so it is logged once
    # and kept in the outbox until Slack is configured.
    failures = lake.list("alerts/_failures/churn_data/outbox")
    assert len(failures) == len(BAD_BATCH_KINDS)
    assert all(
        lake.read_json(f"alerts/_failures/churn_data/outbox/{name}").get("logged_at") for name in failures
    )
    assert lake.list("alerts/_failures/churn_data/sent") == []


def test_warnings_do_not_block(dags: dict, fresh_home: Path) -> None:
    # avg_session_minutes is a 'warning' column: out-of-range values are reported, the batch passes.
    day = START + dt.timedelta(days=30)
    land("churn", day, rows=200)
    lake = get_lake()
    path = Path(str(lake.path(".")).removeprefix("file://")).parent / "landing" / "churn" / f"{day}.csv"
    frame = pd.read_csv(path)
    frame.loc[:9, "avg_session_minutes"] = 9999.0
    frame.to_csv(path, index=False)
    assert run_dag(dags["churn_data"], day).state == "success"
    summary = lake.read_json(f"validation/churn/{day}/summary.json")
    assert summary["passed"] and summary["warnings"][0]["column"] == "avg_session_minutes"
    assert summary["warnings"][0]["unexpected_count"] == 10


def test_missing_upstream_batch_fails_clearly(dags: dict, fresh_home: Path) -> None:
    day = START + dt.timedelta(days=40)
    run = run_dag(dags["churn_data"], day)
    assert run.state == "failed"
    alert = get_lake().list("alerts/_failures/churn_data/outbox")
    record = get_lake().read_json(f"alerts/_failures/churn_data/outbox/{alert[0]}")
    assert "no upstream batch" in record["text"] and "extract_batch" in record["text"]


def _partitioned_config(tmp: Path, partition_mb: float) -> Path:
    """The repo's churn use case with a partition size that splits a small day."""
    import json

    import yaml

    from mlops.core.config import load_use_case_file
    from mlops.data.validation import derive_suite

    root = Path(__file__).resolve().parents[2]
    raw = yaml.safe_load((root / "config" / "use_cases" / "churn.yaml").read_text())
    raw["source"]["partition_mb"] = partition_mb
    config = tmp / "config"
    (config / "use_cases").mkdir(parents=True)
    (config / "expectations").mkdir()
    path = config / "use_cases" / "churn.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (config / "expectations" / "churn.json").write_text(json.dumps(derive_suite(load_use_case_file(path))))
    return config


def test_a_partitioned_day_runs_as_mapped_checks_and_commits_once(
    airflow_db: Path, fresh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day larger than source.partition_mb: one check_partition task per partition, one verdict,
    the day's features committed whole; a bad day is quarantined whole with one report."""
    from mlops.core.config import get_use_case
    from mlops.data.features import build_features
    from mlops.data.parsing import read_batch

    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(_partitioned_config(tmp_path, 0.03)))
    dags = load_dags()
    lake = get_lake()
    good, bad = START + dt.timedelta(days=40), START + dt.timedelta(days=41)

    landed = land("churn", good, rows=2000)
    run = run_dag(dags["churn_data"], good)
    assert run.state == "success"
    checks = [ti for ti in run.get_task_instances() if ti.task_id == "check_partition"]
    summary = lake.read_json(layout.validation_summary("churn", good))
    assert len(checks) == len(summary["parts"]) >= 4 and all(ti.state == "success" for ti in checks)
    assert summary["passed"] and summary["rows"] == 2000
    features = ParquetFeatureStore(lake).read_features("churn", good, good)
    expected = build_features(read_batch(landed, get_use_case("churn"), "csv"), get_use_case("churn"))
    pd.testing.assert_frame_equal(features, expected, check_dtype=False)
    assert not lake.exists(layout.parsed_parts_dir("churn", good))

    land("churn", bad, rows=2000, bad="unknown_category")
    run = run_dag(dags["churn_data"], bad)
    states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.task_id != "check_partition"}
    assert (
        run.state == "failed"
        and states["validate_batch"] == "failed"
        and states["materialize_features"] == "upstream_failed"
    )
    reason = lake.read_json(layout.quarantine_reason("churn", bad))
    assert [e["expectation"] for e in reason["errors"]] == ["expect_column_values_to_be_in_set"]
    assert len(reason["parts"]) >= 4 and lake.exists(layout.quarantine_docs("churn", bad))
    assert not lake.exists(layout.feature_manifest("churn", bad))
