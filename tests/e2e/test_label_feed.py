"""A use case written in YAML only, with string keys and labels on a feed of their own, end to end.

The scoring feed carries no label; the label system delivers each label one to four days after
its event (some ten days late, some never). Through the real DAGs: the data DAG archives and
validates the unlabeled batches; the labels DAG archives, validates and stores each day's
delivery (a broken delivery is quarantined); training uses only labels known by its day; the
scored days are measured, per day, as their labels arrive.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops.core import layout
from mlops.core.config import load_use_case_file
from mlops.core.lake import get_lake
from mlops.data.features import ENTITY, EVENT_TIME, LABEL_AVAILABLE_AT
from mlops.data.validation import derive_suite
from mlops.dev.simulator import batch_bytes, simulate_batch, simulate_labels
from tests.e2e.helpers import load_dags, run_dag

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 6, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(12)]
ROWS = 400


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["customer_id"] = [f"S-{int(v):07d}" for v in frame["customer_id"]]
    return frame


def _config(tmp: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "use_cases" / "churn.yaml").read_text())
    raw["name"] = "subscriptions"
    raw["description"] = "Churn with string customer ids; labels come from the billing system days later."
    raw["source"]["uri"] = "{landing}/subscriptions/{interval}.csv"
    raw["schema"]["columns"]["customer_id"] = {"type": "str"}
    del raw["schema"]["columns"]["churned"]
    del raw["schema"]["target"]
    del raw["schema"]["label_delay_days"]
    raw["labels"] = {
        "source": {"kind": "files", "format": "csv", "uri": "{landing}/subscriptions_labels/{interval}.csv"},
        "entity": "customer_id",
        "event_time": "event_time",
        "label": "churned",
        "max_delay_days": 30,
        "columns": {
            "customer_id": {"type": "str"},
            "event_time": {"type": "datetime"},
            "churned": {"type": "int", "min": 0, "max": 1},
        },
    }
    raw["training"]["schedule"] = None
    raw["drift"]["schedule"] = None
    raw["schedules"]["data"] = None
    config = tmp / "config"
    (config / "use_cases").mkdir(parents=True)
    (config / "expectations").mkdir()
    path = config / "use_cases" / "subscriptions.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    use_case = load_use_case_file(path)
    for feed in use_case.feeds:
        (config / "expectations" / f"{feed.stream}.json").write_text(json.dumps(derive_suite(feed)))
    return config


def _land(home: Path) -> None:
    for day in DAYS:
        batch = _keys(simulate_batch("churn", day, ROWS)).drop(columns=["churned"])
        (home / "landing" / "subscriptions").mkdir(parents=True, exist_ok=True)
        (home / "landing" / "subscriptions" / f"{day.isoformat()}.csv").write_bytes(batch_bytes(batch, "csv"))
    for day in [*DAYS[1:], DAYS[-1] + dt.timedelta(days=1)]:
        labels = _keys(simulate_labels("churn", day, rows=ROWS, first_event_day=START))
        (home / "landing" / "subscriptions_labels").mkdir(parents=True, exist_ok=True)
        (home / "landing" / "subscriptions_labels" / f"{day.isoformat()}.csv").write_bytes(
            batch_bytes(labels, "csv")
        )


def _delivered(day: dt.date) -> pd.DataFrame:
    return _keys(simulate_labels("churn", day, rows=ROWS, first_event_day=START))


def test_label_feed_end_to_end(
    airflow_db: Path, fresh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(_config(tmp_path)))
    _land(fresh_home)
    dags = load_dags()
    assert {"subscriptions_data", "subscriptions_labels"} <= set(dags)
    assert "churn_labels" not in dags  # churn's labels come in its batches
    lake = get_lake()

    for day in DAYS:
        assert run_dag(dags["subscriptions_data"], day).state == "success", day
    for day in DAYS[1:]:
        assert run_dag(dags["subscriptions_labels"], day).state == "success", day

    # The first day, on which no label had arrived yet: a header and no rows is a valid, empty day.
    no_label_yet = fresh_home / "landing" / "subscriptions_labels" / f"{DAYS[0].isoformat()}.csv"
    no_label_yet.write_bytes(b"customer_id,event_time,churned\n")
    assert run_dag(dags["subscriptions_labels"], DAYS[0]).state == "success"
    assert lake.read_json(layout.label_manifest("subscriptions", DAYS[0]))["rows"] == 0
    assert not lake.exists(layout.quarantine_reason("subscriptions.labels", DAYS[0]))
    assert lake.list("alerts/_failures") == []

    # A delivery with an impossible label is quarantined, named, and stores nothing.
    broken = _delivered(DAYS[-1] + dt.timedelta(days=1))
    broken.loc[broken.index[:3], "churned"] = 7
    (
        fresh_home
        / "landing"
        / "subscriptions_labels"
        / f"{(DAYS[-1] + dt.timedelta(days=1)).isoformat()}.csv"
    ).write_bytes(batch_bytes(broken, "csv"))
    assert run_dag(dags["subscriptions_labels"], DAYS[-1] + dt.timedelta(days=1)).state == "failed"
    reason = lake.read_json(layout.quarantine_reason("subscriptions.labels", DAYS[-1] + dt.timedelta(days=1)))
    assert any(
        e["expectation"] == "expect_column_values_to_be_between" and e["column"] == "churned"
        for e in reason["errors"]
    )
    assert not lake.exists(layout.label_manifest("subscriptions", DAYS[-1] + dt.timedelta(days=1)))

    # Training on day 9 sees only the labels delivered by the end of day 9.
    train_day = DAYS[8]
    run = run_dag(
        dags["subscriptions_training"], train_day, {"interval": train_day.isoformat(), "reason": "label feed"}
    )
    assert run.state == "success"
    [manifest_rel] = [
        rel for rel in lake.walk_files("training_sets/subscriptions") if rel.endswith(layout.MANIFEST)
    ]
    manifest = lake.read_json(manifest_rel)
    frames = []
    for split in ("train", "validation", "holdout"):
        with lake.open_read(
            layout.training_split("subscriptions", manifest["interval"], manifest["run_key"], split)
        ) as fh:
            frames.append(pd.read_parquet(fh))
    trained_on = pd.concat(frames, ignore_index=True)
    assert (trained_on[LABEL_AVAILABLE_AT] <= pd.Timestamp(train_day + dt.timedelta(days=1))).all()
    later = pd.concat([_delivered(d) for d in DAYS[9:]], ignore_index=True)
    later_keys = set(zip(later["customer_id"], pd.to_datetime(later["event_time"]), strict=True))
    assert not later_keys & set(zip(trained_on[ENTITY], trained_on[EVENT_TIME], strict=True))
    assert all(isinstance(k, str) and k.startswith("S-") for k in trained_on[ENTITY])
    [decision] = [
        lake.read_json(rel) for rel in lake.children(layout.promotions_dir("subscriptions"), ".json")
    ]
    assert decision["promoted"], decision["reason"]

    # Unlabeled days are scored; the days before them are caught up (they came before the first
    # champion); live performance appears per day as labels arrive.
    scored_days = DAYS[9:]
    assert (
        run_dag(
            dags["subscriptions_scoring"], None, {"intervals": [d.isoformat() for d in scored_days]}
        ).state
        == "success"
    )
    assert sorted(lake.list("predictions/subscriptions")) == [d.isoformat() for d in DAYS]
    assert run_dag(dags["subscriptions_drift"], DAYS[-1]).state == "success"
    summary = lake.read_json(layout.drift_summary("subscriptions", DAYS[-1]))
    by_day = {entry["day"]: entry for entry in summary["performance_by_day"]}
    delivered_by_check = pd.concat([_delivered(d) for d in DAYS[1:]], ignore_index=True)
    for day in scored_days:
        expected = int((pd.to_datetime(delivered_by_check["event_time"]).dt.date == day).sum())
        assert by_day.get(day.isoformat(), {"rows": 0})["rows"] == expected, day
    assert by_day[DAYS[9].isoformat()]["rows"] > 0
    assert DAYS[-1].isoformat() not in by_day  # nothing of the last day has been labelled yet
