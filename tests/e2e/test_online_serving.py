"""The model server as operators run it (``python -m mlops serve``), against a real registry and lake.

A short history (``build_history``: data, a trained and promoted v1, scoring, drift) is made in
a home of its own; the server runs in a child process with ``MLOPS_SERVING_REFRESH_SECONDS=1``.
The test asks it for predictions and compares them with the registry's model in this process,
promotes a second version and rolls it back through the registry functions and watches the
server follow, sends bad requests, stops the server with SIGTERM, and then reads the request
log from the lake (every request exactly once) and runs the drift check on it.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.data.feature_store import get_feature_store
from mlops.data.features import build_features
from mlops.data.parsing import read_batch
from mlops.data.request_log import REQUEST_ID, REQUEST_ROW, read_online_requests
from mlops.dev.simulator import make_batch_bytes
from mlops.model import registry
from mlops.model.registration import train_and_register
from mlops.model.training import predict_scores
from mlops.model.training_set import prepare_training_set
from mlops.monitoring.drift import check_drift
from tests.integration.stack import free_port
from tests.support.history import History, build_history

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 5, 1)
ROWS_DAY = dt.date(2026, 5, 20)  # the day the requested rows describe (any day will do)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def predict(self, rows: list[dict[str, Any]], use_case: str = "churn") -> requests.Response:
        return requests.post(f"{self.url}/v1/{use_case}/predict", json={"rows": rows}, timeout=60)

    def served_version(self) -> str | None:
        return requests.get(f"{self.url}/health", timeout=10).json()["use_cases"]["churn"]["version"]

    def wait_for_version(self, version: str, timeout: float = 60) -> float:
        """Seconds until the server reports ``version``; fails with the server's log when it does not."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process.poll() is None, f"the server exited:\n{self.tail()}"
            if self.served_version() == version:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"the server did not switch to v{version} in {timeout:.0f}s:\n{self.tail()}")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """A platform home of its own (lake, MLflow store) holding a short history with champion v1."""
    home = tmp_path_factory.mktemp("online-serving")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLOPS_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow/mlflow.db")
        env.setenv("MLOPS_MLFLOW_ARTIFACTS_URI", f"file://{home}/mlflow/artifacts")
        env.delenv("MLOPS_FAULT_POINT", raising=False)
        env.delenv("MLOPS_SLACK_WEBHOOK_URL", raising=False)
        yield build_history(START, days=8, train_after=6, drift_from=7, rows=300)


@pytest.fixture(scope="module")
def server(history: History, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import os

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(os.environ) | {
        "MLOPS_SERVING_REFRESH_SECONDS": "1",
        # A batch is written once 100 rows wait (while serving), the rest at shutdown, never by age here.
        "MLOPS_SERVING_FLUSH_ROWS": "100",
        "MLOPS_SERVING_FLUSH_SECONDS": "3600",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops", "serve", "--use-case", "churn", "--port", str(port)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"the server exited at start:\n{running.tail()}"
            try:
                if requests.get(f"{running.url}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the server did not come up:\n{running.tail()}"
            time.sleep(0.5)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def batch() -> Any:
    """Rows as the upstream system has them, parsed as the data pipeline parses a landed batch."""
    use_case = get_use_case("churn")
    return read_batch(make_batch_bytes("churn", ROWS_DAY, "csv", rows=60), use_case, "csv")


def as_request_rows(frame: Any) -> list[dict[str, Any]]:
    inputs = frame.drop(columns=[get_use_case("churn").schema_.target])
    return json.loads(inputs.to_json(orient="records", date_format="iso", date_unit="us"))


def expected_scores(version: str, frame: Any) -> list[float]:
    """What the registry's model ``version`` gives the rows in this process: the batch-scoring path."""
    use_case = get_use_case("churn")
    model = registry.load_model(use_case.registered_model_name, version)
    return [
        float(s)
        for s in predict_scores(model, build_features(frame, use_case)[use_case.feature_names], use_case.task)
    ]


def served_scores(responses: list[requests.Response]) -> list[float]:
    return [p["score"] for r in responses for p in r.json()["predictions"]]


def test_the_server_follows_the_champion_and_logs_every_request(
    history: History, server: Server, batch: Any
) -> None:
    use_case, lake = get_use_case("churn"), get_lake()
    rows = as_request_rows(batch)
    sent: dict[str, tuple[int, str]] = {}  # request id -> (rows, version that answered)

    def ask(chunks: list[list[dict[str, Any]]]) -> list[requests.Response]:
        responses = [server.predict(chunk) for chunk in chunks]
        for response in responses:
            assert response.status_code == 200, response.text
            body = response.json()
            assert response.headers["X-Request-ID"] == body["request_id"]
            sent[body["request_id"]] = (len(body["predictions"]), body["model"]["version"])
        return responses

    # v1, the champion build_history promoted: the same scores as the model in this process.
    assert server.served_version() == history.champion == "1"
    chunks = [rows[:1], rows[1:10], rows[10:60]]
    v1 = ask(chunks)
    assert {r.json()["model"]["version"] for r in v1} == {"1"}
    assert served_scores(v1) == pytest.approx(expected_scores("1", batch), rel=1e-12, abs=1e-15)
    assert [p["customer_id"] for r in v1 for p in r.json()["predictions"]] == [
        int(c) for c in batch["customer_id"]
    ]

    # A second version is registered and promoted (one alias move): the server follows by itself.
    store = get_feature_store()
    run = "manual__serving-v2"
    manifest = prepare_training_set(use_case, history.trained_on, lake, store, run)
    # Fewer, shallower trees than the configured model: a version that scores differently.
    trained = train_and_register(
        use_case, manifest, lake, hyperparameters={"max_iter": 20, "max_leaf_nodes": 8},
        dag_id="churn_training", airflow_run_id=run, reason="online serving test",
    )  # fmt: skip
    client = registry.configure_mlflow()
    registry.apply_aliases(client, use_case, trained["version"], True, "1")
    took = server.wait_for_version(trained["version"])
    print(f"promotion to v{trained['version']} served after {took:.1f}s")
    v2 = ask(chunks)
    assert {r.json()["model"]["version"] for r in v2} == {trained["version"]}
    assert served_scores(v2) == pytest.approx(
        expected_scores(trained["version"], batch), rel=1e-12, abs=1e-15
    )
    assert served_scores(v2) != pytest.approx(served_scores(v1))  # really another model

    # A rollback (the rollback DAG's function) puts v1 back, and the server follows again.
    registry.rollback(
        use_case,
        lake,
        version="1",
        reason="online serving test",
        dag_id="churn_rollback",
        airflow_run_id="manual__serving-rollback",
    )
    took = server.wait_for_version("1")
    print(f"rollback to v1 served after {took:.1f}s")
    back = ask(chunks)
    assert served_scores(back) == served_scores(v1)

    # Bad requests: refused with a status and a message that say what to fix; never logged.
    unknown = server.predict(rows[:1], use_case="fraud")
    assert unknown.status_code == 404 and "unknown use case 'fraud'" in unknown.json()["error"]
    too_many = server.predict(rows[:1] * 1001)
    assert too_many.status_code == 413 and "at most 1000" in too_many.json()["error"]
    missing = server.predict([rows[0], {k: v for k, v in rows[1].items() if k != "plan"}])
    assert missing.status_code == 422
    assert missing.json()["problems"] == [
        {"row": 1, "field": "plan", "message": "missing (expected one of basic, standard, premium)"}
    ]
    wrong = server.predict([rows[0] | {"tenure_months": "ten"}])
    assert (
        wrong.status_code == 422
        and "row 0, field 'tenure_months': expected an integer" in wrong.json()["error"]
    )

    # SIGTERM: requests finish, the buffered log is written, the process ends. (uvicorn re-raises
    # the signal once it has shut down, so the exit status is the signal's.)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM), server.tail()
    shutdown = server.log.read_text().split("Waiting for application shutdown", 1)
    assert len(shutdown) == 2 and "Application shutdown complete" in shutdown[1], server.tail()
    assert "request log of 'churn': wrote" in shutdown[0], "no batch was written while serving"
    assert "request log of 'churn': wrote" in shutdown[1], "nothing was left to write at shutdown"
    today = dt.datetime.now(dt.UTC).date()
    logged = read_online_requests(lake, "churn", [today - dt.timedelta(days=1), today])
    assert not logged.duplicated([REQUEST_ID, REQUEST_ROW]).any()
    assert logged.groupby(REQUEST_ID).size().to_dict() == {rid: n for rid, (n, _) in sent.items()}
    versions = logged.groupby(REQUEST_ID)["model_version"].unique()
    assert {rid: list(v) for rid, v in versions.items()} == {
        rid: [version] for rid, (_, version) in sent.items()
    }
    assert len(logged) == 3 * len(rows)

    # The drift check of today reads the online traffic (no partition was scored today).
    result = check_drift(use_case, today, lake, store, airflow_run_id="manual__online-drift")
    assert result["current_rows_by_source"] == {"batch": 0, "online": len(logged)}
