"""The model server killed (SIGKILL) under load, and its lake down under load: nothing answered is lost.

The server runs as operators run it (``python -m mlops serve``) in a child process, against a
registry holding a churn champion and a file lake, with small request-log segments so shipping
happens all the time. Client threads send a steady load and keep the request id of every 200.

* SIGKILL at random moments, 20 times, restarting each time (the same WAL directory): after a
  final restart and a SIGTERM drain, every answered request is in the lake with all its rows,
  and no row is there twice (a segment shipped before the kill and again after is one batch).
* The lake refusing writes for a while: the server answers from its WAL until its bound, then
  503s with the reason (``/ready`` says why); a SIGKILL meanwhile loses nothing; once the lake
  is back, everything answered reaches it.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops.core.lake import Lake
from mlops.data.request_log import REQUEST_ID, REQUEST_ROW, read_online_requests
from tests.integration.stack import free_port

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
ROW: dict[str, Any] = {
    "event_time": "2026-03-02T08:15:00",
    "plan": "basic",
    "region": "north",
    "tenure_months": 12,
    "monthly_charges": 49.5,
    "total_charges": 594.0,
    "logins_30d": 20,
    "support_contacts_30d": 1,
    "avg_session_minutes": None,
    "payment_failures_90d": 0,
}


def register_champion(home: Path) -> None:
    """churn_model v1 @champion in a registry of its own under ``home`` (the configured pipeline, small data)."""
    import mlflow
    import mlflow.sklearn

    from mlops.core.config import get_use_case
    from mlops.data.features import build_features
    from mlops.dev.simulator import simulate_batch
    from mlops.model import registry
    from mlops.model.registration import skops_trusted_types
    from mlops.model.training import make_pipeline

    use_case = get_use_case("churn")
    batch = simulate_batch("churn", dt.date(2026, 3, 1), rows=500)
    pipe = make_pipeline(use_case).fit(
        build_features(batch, use_case)[use_case.feature_names], batch[use_case.schema_.target]
    )
    client = registry.configure_mlflow()
    with mlflow.start_run(experiment_id=registry.ensure_experiment(client, use_case), run_name="fault-test"):
        info = mlflow.sklearn.log_model(
            sk_model=pipe,
            name="model",
            registered_model_name=use_case.registered_model_name,
            skops_trusted_types=skops_trusted_types(pipe),
        )
    client.set_registered_model_alias(
        use_case.registered_model_name, registry.CHAMPION, str(info.registered_model_version)
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("serving-wal")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLOPS_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow/mlflow.db")
        env.setenv("MLOPS_MLFLOW_ARTIFACTS_URI", f"file://{home}/mlflow/artifacts")
        env.delenv("MLOPS_FAULT_POINT", raising=False)
        env.delenv("MLOPS_LAKE_URI", raising=False)
        register_champion(home)
        yield home


@dataclass
class Server:
    """The model server in a child process, restarted on the same port and WAL directory."""

    home: Path
    lake: Path
    wal: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready: bool = True) -> None:
        self.starts += 1
        log = self.log_file.open("wb")
        env = (
            dict(os.environ)
            | self.env
            | {"MLOPS_LAKE_URI": f"file://{self.lake}", "MLOPS_SERVING_WAL_DIR": str(self.wal)}
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlops", "serve", "--use-case", "churn", "--port", str(self.port)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"the server exited at start:\n{self.tail()}"
            try:
                response = requests.get(f"{self.url}/ready" if ready else f"{self.url}/health", timeout=5)
                if response.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the server did not come up:\n{self.tail()}"
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM: requests in flight finish, the request log ships (the drain)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down: the exit status is the signal's.
        assert self.process.wait(timeout=90) in (0, -signal.SIGTERM), self.tail()

    @property
    def log_file(self) -> Path:
        return self.home / f"server-{self.wal.name}-{self.starts}.log"

    def tail(self) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-40:])


@dataclass
class Load:
    """Client threads posting requests until stopped; every answered request id and its row count."""

    url: str
    clients: int = 3
    answered: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        session = requests.Session()
        while not self._stop.is_set():
            size = rng.randint(1, 3)
            rows = [
                ROW | {"customer_id": rng.randint(1, 10**9), "tenure_months": rng.randint(0, 240)}
                for _ in range(size)
            ]
            try:
                response = session.post(f"{self.url}/v1/churn/predict", json={"rows": rows}, timeout=30)
            except requests.RequestException:  # the server died under the request: not answered
                session = requests.Session()
                time.sleep(0.05)
                continue
            with self._lock:
                if response.status_code == 200:
                    body = response.json()
                    assert len(body["predictions"]) == size
                    self.answered[body["request_id"]] = size
                elif response.status_code == 503:
                    self.refused.append(response.json()["error"])
                    time.sleep(0.05)
                else:
                    self.failed.append(f"{response.status_code}: {response.text[:300]}")


def lake_rows(lake: Path) -> Any:
    today = dt.datetime.now(dt.UTC).date()
    return read_online_requests(
        Lake(f"file://{lake}"), "churn", [today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)]
    )


def assert_all_answered_logged_once(lake: Path, answered: dict[str, int]) -> None:
    logged = lake_rows(lake)
    duplicated = logged[logged.duplicated([REQUEST_ID, REQUEST_ROW], keep=False)]
    assert duplicated.empty, (
        f"{len(duplicated)} rows are in the lake twice, e.g. {duplicated.head(3).to_dict('records')}"
    )
    counts = logged.groupby(REQUEST_ID).size().to_dict()
    missing = {rid: n for rid, n in answered.items() if counts.get(rid) != n}
    assert not missing, (
        f"{len(missing)} of {len(answered)} answered requests are not (wholly) in the lake: {list(missing.items())[:5]}"
    )


def test_sigkill_under_load_loses_no_answered_request(home: Path) -> None:
    server = Server(
        home, lake=home / "lake-kill", wal=home / "wal-kill",
        env={"MLOPS_SERVING_FLUSH_ROWS": "40", "MLOPS_SERVING_FLUSH_SECONDS": "0.5", "MLOPS_SERVING_REFRESH_SECONDS": "60"},
    )  # fmt: skip
    rng = random.Random(20)
    server.start()
    with Load(server.url) as load:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            server.start()
        time.sleep(1.0)
    assert not load.failed, load.failed[:5]
    assert len(load.answered) > 5 * KILLS, f"too little load to mean anything: {len(load.answered)} answered"
    server.stop()
    assert_all_answered_logged_once(server.lake, load.answered)
    assert list((server.wal / "churn").glob("*.wal")) == [], "a clean stop ships every segment"


def test_a_lake_outage_under_load_answers_or_refuses_and_loses_nothing(home: Path) -> None:
    lake, today = home / "lake-outage", dt.datetime.now(dt.UTC).date()
    # The lake refuses the server's writes: where its day folders go there are files.
    blocked = [lake / "serving" / "churn" / (today + dt.timedelta(days=d)).isoformat() for d in (-1, 0, 1)]
    for path in blocked:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not a folder: writes under it fail")
    server = Server(
        home, lake=lake, wal=home / "wal-outage",
        env={
            "MLOPS_SERVING_FLUSH_ROWS": "40", "MLOPS_SERVING_FLUSH_SECONDS": "0.5", "MLOPS_SERVING_REFRESH_SECONDS": "60",
            "MLOPS_SERVING_WAL_MAX_BYTES": "60000",
        },
    )  # fmt: skip
    server.start()
    with Load(server.url) as load:
        deadline = time.monotonic() + 60
        while not load.refused and time.monotonic() < deadline:
            time.sleep(0.2)
        assert load.refused, "the bound was never reached"
        assert "not yet in the lake" in load.refused[0], load.refused[0]
        ready = requests.get(f"{server.url}/ready", timeout=5)
        assert (
            ready.status_code == 503
            and "not yet in the lake" in ready.json()["use_cases"]["churn"]["problems"][0]
        )
        server.kill()  # during the outage, with the WAL full
        server.start(ready=False)
        time.sleep(2)
        for path in blocked:
            path.unlink()  # the lake is back
        server_ready = time.monotonic() + 60
        while requests.get(f"{server.url}/ready", timeout=5).status_code != 200:
            assert time.monotonic() < server_ready, f"not ready after the lake came back:\n{server.tail()}"
            time.sleep(0.2)
        answered_before = len(load.answered)
        time.sleep(2)
        assert len(load.answered) > answered_before, "requests are answered again once the lake is back"
    assert not load.failed, load.failed[:5]
    server.stop()
    assert_all_answered_logged_once(lake, load.answered)
