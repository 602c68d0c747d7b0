"""Scheduled days with the real scheduler: a run that starts after day D has closed processes D.

The embedded service (scheduler, DAG processor, triggerer, API server on SQLite) runs the data
DAG with catchup over the last days, with no ``interval`` param anywhere; the test then asks the
API which day each run archived. A backfill over the same range adds no run (each day is
processed exactly once), and the service stops cleanly.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.lake import Lake
from mlops.dev.simulator import make_batch_bytes
from tests.integration.stack import free_port
from tests.support.service import RunningService, clean_env, config_with

pytestmark = [pytest.mark.slow, pytest.mark.service]

DAYS = 3


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("service-home")
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS)
    config = config_with(
        home,
        {
            "churn": {
                "schedules.start_date": start.isoformat(),
                "schedules.catchup": True,
                "training.schedule": None,
                "drift.schedule": None,
            }
        },
    )
    for i in range(DAYS):
        day = start + dt.timedelta(days=i)
        target = home / "landing" / "churn" / f"{day.isoformat()}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(make_batch_bytes("churn", day, "csv", rows=400))
    port = free_port()
    env = clean_env(
        {
            "MLOPS_HOME": str(home),
            "MLOPS_CONFIG_DIR": str(config),
            "MLOPS_SERVICE_PORT": str(port),
            # Only the DAG under test runs: scoring would wait for a model this test never trains.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
    )
    svc = RunningService(home=home, env=env, port=port)
    started = svc.cli("service", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        svc.login()
        svc.wait("DAG churn_data parsed", lambda: svc.api("GET", "/dags/churn_data").ok, 180)
        assert svc.api("PATCH", "/dags/churn_data", json={"is_paused": False}).ok
        yield svc, [start + dt.timedelta(days=i) for i in range(DAYS)]
    finally:
        svc.cli("service", "stop")


def _runs(svc: RunningService) -> list[dict]:
    return svc.api("GET", "/dags/churn_data/dagRuns", params={"limit": 100}).json()["dag_runs"]


def test_each_scheduled_run_processes_the_day_that_closed(service) -> None:
    svc, days = service

    def all_done() -> bool:
        runs = _runs(svc)
        return len(runs) >= len(days) and all(r["state"] in {"success", "failed"} for r in runs)

    svc.wait(f"{len(days)} scheduled runs of churn_data", all_done, 600)
    runs = sorted(_runs(svc), key=lambda r: r["data_interval_start"])
    assert [r["run_type"] for r in runs] == ["scheduled"] * len(days)
    assert [r["state"] for r in runs] == ["success"] * len(days), runs
    assert [dt.datetime.fromisoformat(r["data_interval_start"]).date() for r in runs] == days
    lake = Lake(f"file://{svc.home / 'lake'}")
    for run, day in zip(runs, days, strict=True):
        # The run starts only after its day has closed.
        assert dt.datetime.fromisoformat(run["run_after"]) >= dt.datetime.combine(
            day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC
        )
        # Its gate judged that day's archived delivery, the file landed for that day.
        xcom = svc.api(
            "GET",
            f"/dags/churn_data/dagRuns/{run['dag_run_id']}/taskInstances/validate_batch/xcomEntries/return_value",
        )
        assert xcom.ok, xcom.text
        value = xcom.json()["value"]
        summary = value if isinstance(value, dict) else json.loads(value)
        manifest = lake.read_json(layout.raw_manifest("churn", day))
        assert summary["interval"] == manifest["interval"] == day.isoformat()
        assert summary["sha256"] == manifest["sha256"]
        assert manifest["source"].endswith(f"churn/{day.isoformat()}.csv")

    assert lake.list(layout.raw_root("churn")) == [d.isoformat() for d in days]
    assert sorted(lake.list(layout.feature_manifests_dir("churn"))) == [f"{d.isoformat()}.json" for d in days]


def test_backfill_over_processed_days_adds_no_run(service) -> None:
    svc, days = service
    before = {r["dag_run_id"] for r in _runs(svc)}
    response = svc.api(
        "POST",
        "/backfills",
        json={
            "dag_id": "churn_data",
            "from_date": f"{days[0].isoformat()}T00:00:00Z",
            "to_date": f"{days[-1].isoformat()}T00:00:00Z",
            "reprocess_behavior": "none",
            "max_active_runs": 2,
        },
    )
    # Nothing to backfill: Airflow refuses a backfill that would create no run, or creates none.
    assert response.status_code in {200, 409, 422}, response.text
    assert {r["dag_run_id"] for r in _runs(svc)} == before


def test_service_stops_everything_it_started(service, tmp_path: Path) -> None:
    svc, _ = service
    status = json.loads(svc.cli("service", "status").stdout)
    assert status["healthy"] is True
    assert all(pid is not None for pid in status["components"].values())
    stopped = svc.cli("service", "stop")
    assert stopped.returncode == 0
    after = json.loads(svc.cli("service", "status").stdout)
    assert after["healthy"] is False
    assert all(pid is None for pid in after["components"].values())
