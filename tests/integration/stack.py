"""The production stack, started natively for the integration tests.

PostgreSQL and Redis are the machine's own services (127.0.0.1); the test creates its own
databases and a Redis DB number and removes them afterwards. S3 is moto's server, the MLflow
tracking server and the Airflow processes (api-server, scheduler, dag-processor, two Celery
workers) are started here with the same commands and settings as `docker-compose.yaml`
(`test_compose_agrees_with_native_stack` checks that).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("MLOPS_TEST_PG_USER", "postgres")}
REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BUCKET = "mlops-lake"

# Same commands as the compose services (first words); the test adds ports and hostnames.
COMMANDS = {
    "airflow-api-server": ["airflow", "api-server"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-worker": ["airflow", "celery", "worker"],
    "mlflow": ["mlflow", "server"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, logs: Path | None = None, interval: float = 1.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except RuntimeError:  # a service died: no point in waiting
            raise
        except Exception:  # not up yet
            pass
        time.sleep(interval)
    tail = ""
    if logs is not None and logs.exists():
        tail = "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
            for p in sorted(logs.glob("*.log"))
        )
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tail}")


def _pg_connect(dbname: str = "postgres") -> Any:
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, **PG)
    conn.autocommit = True
    return conn


@dataclass
class Stack:
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis_db: int = 0
    api_url: str = ""
    mlflow_url: str = ""
    s3_endpoint: str = ""
    username: str = "upstream"
    password: str = ""
    moto: Any = None

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    # ------------------------------------------------------------------ services
    def create_databases(self) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:8]
        names = {kind: f"mlops_it_{kind}_{suffix}" for kind in ("airflow", "mlflow", "features")}
        conn = _pg_connect()
        with conn.cursor() as cur:
            for name in names.values():
                cur.execute(f'CREATE DATABASE "{name}"')
                self.databases.append(name)
        conn.close()
        return names

    def start_s3(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.s3_endpoint = f"http://{host}:{port}"
        # Moto keeps its buckets in this process's memory, shared by every server it starts: an
        # earlier stack's objects (same bucket name) would still be there. Start from none.
        requests.post(f"{self.s3_endpoint}/moto-api/reset", timeout=30).raise_for_status()
        boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)

    def s3_keys(self, prefix: str) -> list[str]:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def config_dir(self) -> Path:
        """The churn use case only, with schedules off: the test drives every run itself."""
        config = self.home / "config"
        (config / "use_cases").mkdir(parents=True)
        shutil.copytree(ROOT / "config" / "expectations", config / "expectations")
        raw = yaml.safe_load((ROOT / "config/use_cases/churn.yaml").read_text())
        raw["schedules"]["data"] = None
        raw["training"]["schedule"] = None
        raw["drift"]["schedule"] = None
        (config / "use_cases/churn.yaml").write_text(yaml.safe_dump(raw))
        return config

    def build_env(self, dbs: dict[str, str], slack_webhook: str) -> None:
        pg = f"{PG['user']}@{PG['host']}:{PG['port']}"
        api_port, mlflow_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        self.redis_db = 9 + (os.getpid() % 6)
        self.password = secrets.token_urlsafe(16)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
        self.env = base | {
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{dbs['airflow']}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_URL}/{self.redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/{dbs['airflow']}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "mlops.orchestration.worker.CELERY_CONFIG",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "900",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_AWS_LAKE": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
                }
            ),
            "AIRFLOW_CONN_MLOPS_FEATURE_STORE": f"postgresql://{pg}/{dbs['features']}",
            "MLOPS_HOME": str(self.home / "mlops"),
            "MLOPS_CONFIG_DIR": str(self.config_dir()),
            "MLOPS_LAKE_URI": f"s3://aws_lake@{BUCKET}/lake",
            "MLOPS_LANDING_URI": f"s3://aws_lake@{BUCKET}/landing",
            "MLOPS_FEATURE_STORE": "postgres",
            "MLOPS_FEATURE_STORE_CONN_ID": "mlops_feature_store",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLOPS_MLFLOW_UI_URL": self.mlflow_url,
            "MLOPS_SLACK_WEBHOOK_URL": slack_webhook,
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "DO_NOT_TRACK": "true",
        }
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            self.env.pop(key, None)
        self.mlflow_backend = f"postgresql+psycopg2://{pg}/{dbs['mlflow']}"

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
        )

    def start_mlflow(self, extra_hosts: tuple[str, ...] = ()) -> None:
        """Start the tracking server; ``extra_hosts`` are more ``host:port`` names clients may use
        (a proxy in front of it), beside its own address."""

        env = self.env | {
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_BACKEND_STORE_URI": self.mlflow_backend,
        }
        port = self.mlflow_url.rsplit(":", 1)[1]
        argv = [
            *COMMANDS["mlflow"],
            "--artifacts-destination",
            f"s3://{BUCKET}/mlflow",
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--workers",
            "1",
            "--allowed-hosts",
            ",".join([f"127.0.0.1:{port}", f"localhost:{port}", *extra_hosts]),
        ]
        self._start("mlflow", argv, env)
        wait_for(
            "MLflow server", lambda: requests.get(f"{self.mlflow_url}/health", timeout=2).ok, 180, self.logs
        )

    def migrate(self) -> None:
        subprocess.run(
            ["airflow", "db", "migrate"], env=self.env, check=True, capture_output=True, timeout=600
        )

    def start_airflow(self, workers: int = 2, pin_workers: bool = False) -> None:
        """Start Airflow's components and ``workers`` Celery workers (concurrency 1 each).

        ``pin_workers`` (benchmarks): worker i runs on CPU core i only, its tasks with one OpenMP
        thread, so that two workers on one machine behave like two one-core machines.
        """

        port = self.api_url.rsplit(":", 1)[1]
        self._start(
            "api-server",
            [*COMMANDS["airflow-api-server"], "--port", port, "--host", "127.0.0.1", "--workers", "1"],
        )
        self._start("scheduler", COMMANDS["airflow-scheduler"])
        self._start("dag-processor", COMMANDS["airflow-dag-processor"])
        for i in range(1, workers + 1):
            env = self.env | {
                "MLOPS_WORKER_NAME": f"worker-{i}",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            }
            argv = [*COMMANDS["airflow-worker"], "--celery-hostname", f"worker-{i}@%h", "--concurrency", "1"]
            if pin_workers:
                env |= {"OMP_NUM_THREADS": "1"}
                argv = ["taskset", "--cpu-list", str((i - 1) % (os.cpu_count() or 1)), *argv]
            self._start(f"worker-{i}", argv, env)
        wait_for(
            "Airflow API server",
            lambda: requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=3).ok,
            240,
            self.logs,
        )

    def assert_alive(self) -> None:
        """Fail at once (with its log) if a service process died, instead of waiting for a timeout."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-40:])
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    # ------------------------------------------------------------------ teardown
    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if self.moto is not None:
            self.moto.stop()
        if self.redis_db:
            import redis

            redis.Redis.from_url(f"{REDIS_URL}/{self.redis_db}").flushdb()
        if self.databases:
            conn = _pg_connect()
            with conn.cursor() as cur:
                for name in self.databases:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.close()
