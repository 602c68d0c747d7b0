"""The whole loop on the production stack, for real: PostgreSQL (Airflow metadata, MLflow backend,
feature store), Redis + two Celery workers, S3 (moto server) for the lake and MLflow artifacts,
an MLflow tracking server, and Airflow's api-server, scheduler and dag-processor. Upstream
systems drive it through the REST API (plain HTTP and the official client) and asset events.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops.dev.slack_standin import SlackStandin
from tests.integration.stack import Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]
START = dt.date(2026, 6, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(14)]
DRIFT_FROM = DAYS[10]


class Api:
    """Airflow's public REST API over plain HTTP, as an upstream system would use it."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url, self.username, self.password = url, username, password
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            r = requests.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"} | kwargs.pop("headers", {})
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str) -> requests.Response:
        return self.request(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )

    def state(self, dag_id: str, run_id: str) -> str:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        r.raise_for_status()
        return r.json()["state"]

    def wait(self, dag_id: str, run_ids: list[str], stack: Stack, timeout: float = 900) -> dict[str, str]:
        states: dict[str, str] = {}

        def done() -> bool:
            stack.assert_alive()
            for rid in run_ids:
                states[rid] = self.state(dag_id, rid)
            return all(s in {"success", "failed"} for s in states.values())

        wait_for(f"{dag_id} runs {run_ids}", done, timeout, stack.logs, interval=3)
        return states

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
        r.raise_for_status()
        return r.json()["dag_runs"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Api, SlackStandin]]:
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        os.environ.pop(key, None)
    slack = SlackStandin(token="xoxb-test").start()
    s = Stack(home=tmp_path_factory.mktemp("stack"))
    saved = dict(os.environ)
    try:
        dbs = s.create_databases()
        s.start_s3()
        s.build_env(dbs, slack.webhook_url)
        # This process lands upstream batches and reads results with the same settings.
        os.environ.update(
            {k: v for k, v in s.env.items() if k.startswith(("MLOPS_", "MLFLOW_", "AIRFLOW_CONN_"))}
        )
        s.migrate()
        s.start_mlflow()
        s.start_airflow(workers=2)
        api = Api(s.api_url, s.username, s.password)
        dags = ("churn_data", "churn_training", "churn_scoring", "churn_drift", "churn_rollback")
        wait_for(
            "DAGs parsed",
            lambda: all(api.request("GET", f"/api/v2/dags/{d}").status_code == 200 for d in dags),
            300,
            s.logs,
            interval=3,
        )
        yield s, api, slack
    finally:
        s.stop()
        slack.stop()
        os.environ.clear()
        os.environ.update(saved)


def _land(days: list[dt.date], rows: int = 600) -> None:
    from mlops.dev.simulator import DEFAULT_DRIFT, Drift
    from tests.e2e.helpers import land

    drift = Drift(start=DRIFT_FROM, **DEFAULT_DRIFT["churn"])
    for day in days:
        land("churn", day, rows=rows, drift=drift)


def _features_in_postgres() -> tuple[int, int]:
    from mlops.data.feature_store import PostgresFeatureStore

    conn = PostgresFeatureStore("mlops_feature_store")._connect()
    with conn.cursor() as cur:
        cur.execute('SELECT count(*), count(DISTINCT (entity_id, event_time)) FROM "features_churn"')
        total, distinct = cur.fetchone()
    conn.close()
    return int(total), int(distinct)


def test_rest_api_refuses_bad_requests(stack: tuple[Stack, Api, SlackStandin]) -> None:
    s, api, _ = stack
    body = {"logical_date": None, "conf": {"interval": "2026-06-01"}}
    assert (
        requests.post(f"{s.api_url}/api/v2/dags/churn_data/dagRuns", json=body, timeout=30).status_code == 401
    )
    # Airflow 3.3 answers a token it cannot verify with 403 (and a missing one with 401).
    import jwt

    forged = jwt.encode({"sub": "upstream", "exp": 4102444800}, "not-the-secret", algorithm="HS512")
    for token in ("not-a-token", forged):
        r = requests.post(
            f"{s.api_url}/api/v2/dags/churn_data/dagRuns",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code in {401, 403}, (token, r.status_code, r.text)
    assert api.runs("churn_data") == []  # nothing was started by the refused requests
    assert api.trigger("no_such_dag", {}, "x1").status_code == 404
    r = api.trigger("churn_data", {"interval": "first of June"}, "bad-param")
    assert r.status_code == 400
    assert "interval" in r.text and "date" in r.text
    r = api.trigger("churn_training", {"promotion_mode": "yolo"}, "bad-mode")
    assert r.status_code == 400 and "yolo" in r.text


def test_whole_loop_on_the_production_stack(stack: tuple[Stack, Api, SlackStandin]) -> None:
    import airflow_client.client as ac
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
    from mlflow import MlflowClient

    from mlops.core.lake import get_lake
    from mlops.model.registry import promotion_history

    s, api, slack = stack
    lake = get_lake()
    _land(DAYS[:10])

    # Data: day 1 through the official client, the rest over plain HTTP; a re-sent trigger is refused.
    config = ac.Configuration(host=s.api_url, access_token=api.token())
    with ac.ApiClient(config) as client:
        body = TriggerDAGRunPostBody(
            dag_run_id=f"upstream__{DAYS[0]}",
            logical_date=None,
            conf={"interval": DAYS[0].isoformat(), "request_id": "req-0"},
        )
        created = DagRunApi(client).trigger_dag_run("churn_data", body)
        assert created.dag_run_id == f"upstream__{DAYS[0]}"
    run_ids = [f"upstream__{DAYS[0]}"]
    for i, day in enumerate(DAYS[1:10], start=1):
        r = api.trigger(
            "churn_data", {"interval": day.isoformat(), "request_id": f"req-{i}"}, f"upstream__{day}"
        )
        assert r.status_code == 200, r.text
        run_ids.append(f"upstream__{day}")
    assert (
        api.trigger(
            "churn_data", {"interval": DAYS[1].isoformat(), "request_id": "req-1"}, f"upstream__{DAYS[1]}"
        ).status_code
        == 409
    )
    states = api.wait("churn_data", run_ids, s)
    assert set(states.values()) == {"success"}, states
    assert _features_in_postgres() == (6000, 6000)
    assert len(s.s3_keys(f"lake/raw/churn/{DAYS[0]}/")) == 2  # batch + manifest on S3

    # Train: eight candidates fan out over both Celery workers, the best is registered on the MLflow
    # server (artifacts on S3), gated and promoted.
    r = api.trigger(
        "churn_training",
        {"interval": DAYS[9].isoformat(), "reason": "integration", "search_budget": 8},
        "train-1",
    )
    assert r.status_code == 200, r.text
    assert api.wait("churn_training", ["train-1"], s) == {"train-1": "success"}
    fitted = []
    for i in range(8):
        x = api.request(
            "GET",
            "/api/v2/dags/churn_training/dagRuns/train-1/taskInstances/train_candidate/xcomEntries/return_value",
            params={"map_index": i, "deserialize": True},
        )
        assert x.status_code == 200, x.text
        value = x.json()["value"]
        fitted.append(value if isinstance(value, dict) else json.loads(value))
    assert {f["worker"] for f in fitted} == {"worker-1", "worker-2"}, [f["worker"] for f in fitted]
    assert len({f["name"] for f in fitted}) == 8 and all(f["status"] == "ok" for f in fitted)
    metric = "validation_roc_auc"
    best = sorted(fitted, key=lambda f: (-f["metrics"][metric], f["name"]))[0]
    # Both URIs explicitly: an earlier test in this session may have set MLflow's global registry URI.
    mlflow = MlflowClient(tracking_uri=s.mlflow_url, registry_uri=s.mlflow_url)
    champion = mlflow.get_model_version_by_alias("churn_model", "champion")
    assert str(champion.version) == "1"
    assert mlflow.get_run(champion.run_id).data.tags["best_candidate"] == best["name"]
    assert any(k.startswith("mlflow/") and k.endswith("model.skops") for k in s.s3_keys("mlflow/")), (
        "model artifacts must be on S3"
    )

    # Score eight partitions: the mapped tasks fan out over both Celery workers.
    intervals = [d.isoformat() for d in DAYS[2:10]]
    r = api.trigger("churn_scoring", {"intervals": intervals}, "score-fanout")
    assert r.status_code == 200, r.text
    assert api.wait("churn_scoring", ["score-fanout"], s) == {"score-fanout": "success"}
    workers = set()
    for i in range(len(intervals)):
        x = api.request(
            "GET",
            "/api/v2/dags/churn_scoring/dagRuns/score-fanout/taskInstances/score_partition/xcomEntries/return_value",
            params={"map_index": i, "deserialize": True},
        )
        assert x.status_code == 200, x.text
        value = x.json()["value"]
        workers.add(value["worker"] if isinstance(value, dict) else json.loads(value)["worker"])
    assert workers == {"worker-1", "worker-2"}, workers
    assert all(lake.exists(f"predictions/churn/{d}/_manifest.json") for d in intervals)

    # Drifted days arrive: data, scoring, then the drift DAG alerts once and retrains through the gate.
    _land(DAYS[10:14])
    drift_runs = []
    for day in DAYS[10:14]:
        assert api.trigger("churn_data", {"interval": day.isoformat()}, f"upstream__{day}").status_code == 200
        drift_runs.append(f"upstream__{day}")
    assert set(api.wait("churn_data", drift_runs, s).values()) == {"success"}
    assert (
        api.trigger(
            "churn_scoring", {"intervals": [d.isoformat() for d in DAYS[10:14]]}, "score-drifted"
        ).status_code
        == 200
    )
    assert api.wait("churn_scoring", ["score-drifted"], s) == {"score-drifted": "success"}
    before = [m for m in slack.messages if m.text and m.text.startswith("Drift detected")]
    assert before == []
    assert api.trigger("churn_drift", {"interval": DAYS[13].isoformat()}, "drift-check").status_code == 200
    assert api.wait("churn_drift", ["drift-check"], s) == {"drift-check": "success"}
    drift_messages = [m for m in slack.messages if m.text and m.text.startswith("Drift detected")]
    assert len(drift_messages) == 1 and "churn" in drift_messages[0].text
    retrains = [r for r in api.runs("churn_training") if r["dag_run_id"].startswith("drift__")]
    assert len(retrains) == 1 and retrains[0]["conf"]["reason"].startswith("drift: ")
    rid = retrains[0]["dag_run_id"]
    assert api.wait("churn_training", [rid], s) == {rid: "success"}
    history = promotion_history(lake, "churn")
    assert [h["version"] for h in history] == ["1", "2"], [
        (h["version"], h["airflow_run_id"], h["outcome"], h["decided_at"]) for h in history
    ]
    assert history[1]["airflow_run_id"] == rid and history[1]["outcome"] in {"promoted", "rejected"}

    # An upstream system announces new data with an asset event: scoring starts by itself.
    assets = api.request("GET", "/api/v2/assets", params={"name_pattern": "churn_features"}).json()["assets"]
    asset_id = next(a["id"] for a in assets if a["name"] == "churn_features")
    seen = {r["dag_run_id"] for r in api.runs("churn_scoring")}
    r = api.request(
        "POST",
        "/api/v2/assets/events",
        json={"asset_id": asset_id, "extra": {"interval": DAYS[5].isoformat()}},
    )
    assert r.status_code == 200, r.text
    new: list[str] = []

    def started() -> bool:
        new[:] = [
            x["dag_run_id"]
            for x in api.runs("churn_scoring")
            if x["dag_run_id"] not in seen and x["run_type"] == "asset_triggered"
        ]
        return bool(new)

    wait_for("asset-triggered scoring run", started, 180, s.logs, interval=3)
    assert api.wait("churn_scoring", new, s) == {rid: "success" for rid in new}


def test_compose_agrees_with_native_stack(stack: tuple[Stack, Api, SlackStandin]) -> None:
    from tests.integration.stack import COMMANDS
    from tests.support.compose_contract import compose_services

    s, _, _ = stack
    services = compose_services(Path(__file__).resolve().parents[2] / "docker-compose.yaml")
    for name, argv in COMMANDS.items():
        compose_cmd = services[name]["command"]
        assert compose_cmd[: len(argv)] == argv, (name, compose_cmd)
    worker_env = services["airflow-worker"]["environment"]
    for key in worker_env:
        if key.startswith("MLOPS_") or key in {"AIRFLOW__CORE__EXECUTOR", "MLFLOW_TRACKING_URI"}:
            if key in {"MLOPS_GIT_COMMIT"}:
                continue
            assert key in s.env, f"compose sets {key} but the native stack does not"
    assert s.env["AIRFLOW__CORE__EXECUTOR"] == worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert s.env["MLOPS_FEATURE_STORE"] == worker_env["MLOPS_FEATURE_STORE"]
    assert s.env["MLOPS_LAKE_URI"] == worker_env["MLOPS_LAKE_URI"]


LOAD_DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(10)]


def test_fifty_concurrent_triggers_make_ten_runs(stack: tuple[Stack, Api, SlackStandin]) -> None:
    """Upstream systems retry: 10 request ids, each sent five times, all 50 at once."""
    from concurrent.futures import ThreadPoolExecutor

    from mlops.core import layout
    from mlops.core.lake import get_lake

    s, api, _ = stack
    # Scoring follows every new feature partition; it is not what this test is about.
    assert api.request("PATCH", "/api/v2/dags/churn_scoring", json={"is_paused": True}).status_code == 200
    _land(LOAD_DAYS, rows=200)
    api.token()  # one login, before the burst
    requests_ = [(f"load-{day}", day) for day in LOAD_DAYS] * 5

    def send(request: tuple[str, dt.date]) -> tuple[str, int, str]:
        request_id, day = request
        r = api.trigger(
            "churn_data", {"interval": day.isoformat(), "request_id": request_id}, f"upstream__{request_id}"
        )
        return request_id, r.status_code, r.text[:300]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(send, requests_))
    by_id: dict[str, list[int]] = {}
    for request_id, status, text in answers:
        assert status in {200, 409}, (request_id, status, text)  # no error but the duplicate's 409
        by_id.setdefault(request_id, []).append(status)
    assert all(sorted(statuses) == [200, 409, 409, 409, 409] for statuses in by_id.values()), by_id

    run_ids = [f"upstream__load-{day}" for day in LOAD_DAYS]
    assert sorted(
        r["dag_run_id"] for r in api.runs("churn_data") if r["dag_run_id"].startswith("upstream__load-")
    ) == sorted(run_ids)
    assert api.wait("churn_data", run_ids, s, timeout=900) == {rid: "success" for rid in run_ids}
    # Each interval processed once: one archived delivery, one committed feature partition.
    lake = get_lake()
    for day in LOAD_DAYS:
        manifest = lake.read_json(layout.raw_manifest("churn", day))
        assert manifest["superseded"] == [] and manifest["interval"] == day.isoformat()
        assert (
            len(
                [
                    k
                    for k in s.s3_keys(f"lake/{layout.raw_dir('churn', day)}/")
                    if not k.endswith("_manifest.json")
                ]
            )
            == 1
        )
    from mlops.data.feature_store import PostgresFeatureStore

    partitions = PostgresFeatureStore("mlops_feature_store").partitions("churn")
    assert all(partitions[day]["rows"] == 200 for day in LOAD_DAYS)
    total, distinct = _features_in_postgres()
    assert total == distinct  # no row written twice
