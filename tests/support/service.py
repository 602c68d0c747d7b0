"""The embedded service (``python -m mlops service``) started for a test, in a home of its own.

The service runs in child processes with a clean environment: only the variables the test
gives, so it never shares the test session's Airflow database.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        base.pop(key, None)
    return (
        base
        | {"GX_ANALYTICS_ENABLED": "False", "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}
        | extra
    )


def wait_out_midnight(margin: dt.timedelta) -> None:
    """Sleep past the next midnight UTC if it is less than ``margin`` away.

    A test whose feeds end yesterday must run within one UTC day: after midnight the scheduler
    runs the new day, whose batch was never landed.
    """
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    if midnight - now < margin:
        time.sleep((midnight - now).total_seconds() + 5)


def config_with(home: Path, use_cases: dict[str, dict[str, Any]]) -> Path:
    """A config folder holding only the given use cases, each the shipped YAML with overrides."""
    config = home / "config"
    (config / "use_cases").mkdir(parents=True)
    (config / "expectations").mkdir()
    for name, overrides in use_cases.items():
        raw = yaml.safe_load((ROOT / "config" / "use_cases" / f"{name}.yaml").read_text())
        for dotted, value in overrides.items():
            node = raw
            *path, last = dotted.split(".")
            for key in path:
                node = node[key]
            node[last] = value
        (config / "use_cases" / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        shutil.copy(
            ROOT / "config" / "expectations" / f"{name}.json", config / "expectations" / f"{name}.json"
        )
    return config


@dataclass
class RunningService:
    home: Path
    env: dict[str, str]
    port: int
    token: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlops", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )

    def login(self) -> None:
        password = json.loads((self.home / "service" / "passwords.json").read_text())["admin"]
        response = requests.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": password}, timeout=10
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    def wait(self, what: str, check: Callable[[], bool], timeout: float, interval: float = 3) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(interval)
        logs = "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            for p in sorted((self.home / "service").glob("*.log"))
        )
        raise TimeoutError(f"{what}: not done after {timeout:.0f}s\n{logs}")
