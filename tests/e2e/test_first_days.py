"""A new use case's first days with the real scheduler: a week of catchup before any model, then
the first model on request.

The use case (``subs``: churn with string customer ids and its labels on a feed of their own)
starts a week ago with catchup and has no model. Every scheduled data and label day runs, and a
day on which no label arrived is a valid day; the scoring runs the new features start and the
scheduled drift check end skipped with the reason ("no champion yet"): nothing fails and no
failure alert is written. Then an upstream system asks for the first model over REST with an
empty conf: the run trains on the latest closed day (yesterday, UTC), the gate promotes it, and
the champion Asset starts a scoring run that scores the days skipped before.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlops.core import layout
from mlops.core.config import load_use_case_file
from mlops.core.lake import Lake
from mlops.dev.simulator import batch_bytes, delivered, simulate_batch, simulate_labels
from tests.integration.stack import free_port
from tests.support.service import ROOT, RunningService, clean_env, wait_out_midnight

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.timeout(900)]

UC = "subs"
DAYS = 7
ROWS = 400
KINDS = ("data", "labels", "scoring", "drift", "training")
NO_CHAMPION = "no champion yet"


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["customer_id"] = [f"S-{int(v):07d}" for v in frame["customer_id"]]
    return frame


def _config(home: Path, start: dt.date) -> Path:
    """The shipped churn config as a new use case: string keys, labels on their own feed, one
    candidate, catchup from ``start``, drift checked daily, no training schedule."""
    from mlops.data.validation import derive_suite, suite_path

    raw = yaml.safe_load((ROOT / "config" / "use_cases" / "churn.yaml").read_text())
    raw["name"] = UC
    raw["description"] = "Churn with string customer ids; labels come from the billing system days later."
    raw["source"]["uri"] = f"{{landing}}/{UC}/{{interval}}.csv"
    schema = raw["schema"]
    target = schema.pop("target")
    schema.pop("label_delay_days")
    label_type = schema["columns"].pop(target)
    schema["columns"]["customer_id"] = {"type": "str"}
    raw["labels"] = {
        "source": {"kind": "files", "format": "csv", "uri": f"{{landing}}/{UC}_labels/{{interval}}.csv"},
        "entity": "customer_id",
        "event_time": "event_time",
        "label": target,
        "max_delay_days": 30,
        "columns": {
            "customer_id": {"type": "str"},
            "event_time": {"type": "datetime"},
            target: label_type,
        },
    }
    raw["model"].pop("search")  # one candidate: the configured model
    raw["training"]["schedule"] = None
    raw["drift"]["schedule"] = "@daily"  # scheduled before any model exists, too
    raw["promotion"]["mode"] = "auto"
    raw["schedules"] |= {"data": "@daily", "start_date": start.isoformat(), "catchup": True}
    config = home / "config"
    (config / "use_cases").mkdir(parents=True)
    path = config / "use_cases" / f"{UC}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    use_case = load_use_case_file(path)
    # The promotion's scoring run catches up the whole week: every day is in its window.
    assert use_case.catch_up_days >= DAYS
    for feed in use_case.feeds:
        suite = suite_path(config, feed.stream)
        suite.parent.mkdir(parents=True, exist_ok=True)
        suite.write_text(json.dumps(derive_suite(feed)))
    return config


def _land(landing: Path, days: list[dt.date]) -> None:
    """Each day's unlabeled snapshot, and the labels delivered that day (of earlier events)."""
    for day in days:
        batch = _keys(simulate_batch("churn", day, ROWS)).drop(columns=["churned"])
        labels = _keys(simulate_labels("churn", day, rows=ROWS, first_event_day=days[0]))
        # The first day: no event before it, so no label arrives (a header and no rows).
        assert labels.empty == (day == days[0])
        for folder, frame in ((UC, batch), (f"{UC}_labels", labels)):
            target = landing / folder / f"{day.isoformat()}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(batch_bytes(frame, "csv"))
            delivered(target, day)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    wait_out_midnight(dt.timedelta(minutes=12))  # the landed days end yesterday
    home = tmp_path_factory.mktemp("first-days-home")
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=DAYS - i) for i in range(DAYS)]
    config = _config(home, days[0])
    _land(home / "landing", days)
    port = free_port()
    env = clean_env(
        {
            "MLOPS_HOME": str(home),
            "MLOPS_CONFIG_DIR": str(config),
            "MLOPS_SERVICE_PORT": str(port),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # rollback stays paused
        }
    )
    svc = RunningService(home=home, env=env, port=port)
    started = svc.cli("service", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        svc.login()
        dag_ids = [f"{UC}_{kind}" for kind in KINDS]
        svc.wait(
            "the use case's DAGs parsed", lambda: all(svc.api("GET", f"/dags/{d}").ok for d in dag_ids), 180
        )
        for dag_id in dag_ids:
            assert svc.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).ok, dag_id
        yield svc, days
    finally:
        svc.cli("service", "stop")


def _runs(svc: RunningService, kind: str) -> list[dict[str, Any]]:
    response = svc.api("GET", f"/dags/{UC}_{kind}/dagRuns", params={"limit": 100, "order_by": "run_after"})
    assert response.ok, response.text
    return list(response.json()["dag_runs"])


def _done(runs: list[dict[str, Any]]) -> bool:
    return all(r["state"] in {"success", "failed"} for r in runs)


def _tasks(svc: RunningService, kind: str, run_id: str) -> dict[str, dict[str, Any]]:
    response = svc.api("GET", f"/dags/{UC}_{kind}/dagRuns/{run_id}/taskInstances")
    assert response.ok, response.text
    return {
        ti["task_id"] + ("" if ti["map_index"] < 0 else f"[{ti['map_index']}]"): ti
        for ti in response.json()["task_instances"]
    }


def _states(svc: RunningService, kind: str, run_id: str) -> dict[str, str | None]:
    return {task: ti["state"] for task, ti in _tasks(svc, kind, run_id).items()}


def _log(svc: RunningService, kind: str, run_id: str, ti: dict[str, Any]) -> str:
    response = svc.api(
        "GET",
        f"/dags/{UC}_{kind}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}",
        params={"full_content": True},
    )
    assert response.ok, response.text
    return response.text


def _xcom(svc: RunningService, kind: str, run_id: str, task_id: str) -> Any:
    response = svc.api(
        "GET", f"/dags/{UC}_{kind}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    )
    assert response.ok, response.text
    value = response.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def _settled(svc: RunningService) -> tuple[int, ...] | None:
    """Every data and label day ran, the scheduled drift check ran, and every scoring run the new
    features asked for (none still queued as an Asset event) has finished: the count of runs per
    DAG, or None while something is still to come."""
    data, labels = _runs(svc, "data"), _runs(svc, "labels")
    drift, scoring = _runs(svc, "drift"), _runs(svc, "scoring")
    queued = svc.api("GET", f"/dags/{UC}_scoring/assets/queuedEvents")
    assert queued.ok, queued.text
    settled = (
        len(data) >= DAYS
        and len(labels) >= DAYS
        and len(drift) >= 1
        and len(scoring) >= 1
        and queued.json()["total_entries"] == 0
        and all(_done(runs) for runs in (data, labels, drift, scoring))
    )
    return (len(data), len(labels), len(drift), len(scoring)) if settled else None


def _quiet(svc: RunningService, polls: int = 5) -> Any:
    """A check that holds once ``_settled`` has given the same answer ``polls`` times in a row: an
    Asset event of the last label run queued a moment after its run ended is not missed."""
    seen: list[tuple[int, ...] | None] = []

    def check() -> bool:
        seen.append(_settled(svc))
        return len(seen) >= polls and seen[-1] is not None and len(set(seen[-polls:])) == 1

    return check


def _failure_alerts(lake: Lake) -> list[str]:
    """Every failure alert of the use case's DAGs, waiting or sent."""
    return [
        f"{box}/{name}"
        for kind in (*KINDS, "rollback")
        for box in (
            layout.alert_box(layout.failure_scope(f"{UC}_{kind}"), "outbox"),
            layout.alert_box(layout.failure_scope(f"{UC}_{kind}"), "sent"),
        )
        for name in lake.list(box)
    ]


def _failed_runs(svc: RunningService) -> list[str]:
    return [
        f"{UC}_{kind} {r['dag_run_id']}: {r['state']}"
        for kind in KINDS
        for r in _runs(svc, kind)
        if r["state"] != "success"
    ]


def test_a_week_before_any_model_runs_without_a_failure(service) -> None:
    svc, days = service
    svc.wait("a week of data and label runs, the drift check and the scoring runs", _quiet(svc), 600)
    lake = Lake(f"file://{svc.home / 'lake'}")

    assert _failed_runs(svc) == []
    for kind in ("data", "labels"):
        runs = _runs(svc, kind)
        assert [r["run_type"] for r in runs] == ["scheduled"] * DAYS, kind
        assert [dt.datetime.fromisoformat(r["data_interval_start"]).date() for r in runs] == days, kind
    assert lake.list(layout.raw_root(UC)) == [d.isoformat() for d in days]
    assert lake.list(layout.feature_manifests_dir(UC)) == [f"{d.isoformat()}.json" for d in days]
    # The first day's delivery had no label: a valid, empty day, not a quarantine.
    assert lake.read_json(layout.label_manifest(UC, days[0]))["rows"] == 0
    assert all(lake.read_json(layout.label_manifest(UC, d))["rows"] > 0 for d in days[1:])
    assert lake.list(layout.quarantine_root(UC)) == lake.list(layout.quarantine_root(f"{UC}.labels")) == []

    # With no model, scoring and the drift check end skipped and say why.
    for run in _runs(svc, "scoring"):
        tasks = _tasks(svc, "scoring", run["dag_run_id"])
        assert {t: ti["state"] for t, ti in tasks.items()} == {
            "partitions_to_score": "skipped",
            "score_partition": "skipped",
        }, run["dag_run_id"]
        assert NO_CHAMPION in _log(svc, "scoring", run["dag_run_id"], tasks["partitions_to_score"])
    [drift] = _runs(svc, "drift")
    assert drift["run_type"] == "scheduled"
    assert dt.datetime.fromisoformat(drift["data_interval_start"]).date() == days[-1]
    tasks = _tasks(svc, "drift", drift["dag_run_id"])
    assert tasks["check_drift"]["state"] == "skipped"
    assert tasks["send_alerts"]["state"] == "success"
    assert NO_CHAMPION in _log(svc, "drift", drift["dag_run_id"], tasks["check_drift"])
    assert lake.list(layout.predictions_root(UC)) == []
    assert not lake.exists(layout.drift_summary(UC, days[-1]))

    # Nothing to do is not a failure: no failure alert, and no drift alert either.
    assert _failure_alerts(lake) == []
    assert lake.list(layout.failure_scopes_root()) == []
    assert lake.list(layout.alert_box(UC, "outbox")) == lake.list(layout.alert_box(UC, "sent")) == []


def test_first_model_on_request_trains_on_yesterday_and_scores_the_skipped_days(service) -> None:
    svc, days = service
    svc.wait("a week of data and label runs, the drift check and the scoring runs", _quiet(svc), 600)
    lake = Lake(f"file://{svc.home / 'lake'}")
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert yesterday == days[-1]
    scoring_before = {r["dag_run_id"] for r in _runs(svc, "scoring")}

    # An upstream system asks for the first model and names no day.
    posted = svc.api("POST", f"/dags/{UC}_training/dagRuns", json={"logical_date": None, "conf": {}})
    assert posted.ok, posted.text
    run_id = posted.json()["dag_run_id"]
    assert posted.json()["logical_date"] is None

    def training_state() -> str:
        return str(svc.api("GET", f"/dags/{UC}_training/dagRuns/{run_id}").json()["state"])

    svc.wait("the requested training run", lambda: training_state() in {"success", "failed"}, 300)
    assert training_state() == "success", _states(svc, "training", run_id)

    # It trained on the latest closed day, and says so in its result.
    manifest = _xcom(svc, "training", run_id, "prepare_training_set")
    assert manifest["interval"] == yesterday.isoformat()
    prepared = _tasks(svc, "training", run_id)["prepare_training_set"]
    assert "latest closed day" in _log(svc, "training", run_id, prepared)
    assert lake.read_json(layout.training_set_manifest(UC, yesterday, manifest["run_key"]))["interval"] == (
        yesterday.isoformat()
    )
    entry = _xcom(svc, "training", run_id, "evaluate_and_promote")
    assert entry["promoted"] and entry["outcome"] == "promoted", entry["reason"]
    [record] = [lake.read_json(rel) for rel in lake.children(layout.promotions_dir(UC), ".json")]
    assert (record["version"], record["promoted"], record["airflow_run_id"]) == (
        entry["version"],
        True,
        run_id,
    )

    # The champion Asset starts one scoring run; it scores every day skipped before.
    def new_scoring() -> list[dict[str, Any]]:
        return [r for r in _runs(svc, "scoring") if r["dag_run_id"] not in scoring_before]

    svc.wait(
        "the scoring run the champion started", lambda: bool(new_scoring()) and _done(new_scoring()), 300
    )
    [scoring] = new_scoring()
    assert scoring["state"] == "success", _states(svc, "scoring", scoring["dag_run_id"])
    assert scoring["run_type"] == "asset_triggered"
    events = svc.api("GET", f"/dags/{UC}_scoring/dagRuns/{scoring['dag_run_id']}/upstreamAssetEvents")
    # The champion's event started it; a feature event still queued then may ride along (the
    # scheduler hands a run every event its Assets queued), which changes nothing scored.
    names = [e["name"] for e in events.json()["asset_events"]]
    assert f"{UC}_champion" in names and set(names) <= {f"{UC}_champion", f"{UC}_features"}, names
    assert _xcom(svc, "scoring", scoring["dag_run_id"], "partitions_to_score") == [
        d.isoformat() for d in days
    ]
    assert lake.list(layout.predictions_root(UC)) == [d.isoformat() for d in days]
    for day in days:
        predictions = lake.read_json(layout.predictions_manifest(UC, day))
        assert (predictions["interval"], predictions["rows"], predictions["model_version"]) == (
            day.isoformat(),
            ROWS,
            entry["version"],
        )

    assert _failed_runs(svc) == []
    assert _failure_alerts(lake) == []
