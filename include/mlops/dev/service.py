"""The embedded platform as a running service: Airflow's scheduler, DAG processor, triggerer and
API server in the background, on SQLite with a LocalExecutor sized to the machine.

``python -m mlops service start`` starts them (each a process group with its pid file and log
under ``$MLOPS_HOME/service``) and waits until the API server answers; ``... service status``
reports each component; ``... service stop`` stops what ``start`` started, and only that.

The login is a user ``admin`` of Airflow's simple auth manager whose password is generated once
and kept in ``$MLOPS_HOME/service/passwords.json`` (readable by the owner only); secrets Airflow
needs (JWT and API keys) are generated the same way. Nothing is written to the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"


@dataclass(frozen=True)
class Service:
    home: Path  # $MLOPS_HOME
    port: int = 8080

    @property
    def run_dir(self) -> Path:
        return self.home / "service"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.log"

    # ------------------------------------------------------------------------------------------
    def _secret(self, name: str) -> str:
        """A secret generated on first use and kept, owner-readable only, under the run folder."""
        path = self.run_dir / f"{name}.secret"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def password(self) -> str:
        return json.loads(self._passwords_file().read_text())[USER]

    def _passwords_file(self) -> Path:
        path = self.run_dir / "passwords.json"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps({USER: secrets.token_urlsafe(12)}))
        return path

    def airflow_env(self) -> dict[str, str]:
        """Airflow settings of the service (on top of the embedded defaults)."""
        from mlops.core.settings import apply_env_defaults
        from mlops.dev.embedded import apply_embedded_defaults

        apply_embedded_defaults()
        cores = os.cpu_count() or 2
        return apply_env_defaults(
            {
                "AIRFLOW__CORE__PARALLELISM": str(max(2, cores)),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._passwords_file()),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
                "AIRFLOW__API__SECRET_KEY": self._secret("api"),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            }
        )

    def _child_env(self) -> dict[str, str]:
        from mlops.core.settings import child_environment

        self.airflow_env()
        # Components start further `airflow` processes from PATH: this virtualenv's comes first.
        return child_environment(bin_first=Path(sys.executable).parent)

    # ------------------------------------------------------------------------------------------
    def running(self) -> dict[str, int | None]:
        """Each component's pid if its process is alive, else None."""
        out: dict[str, int | None] = {}
        for component in COMPONENTS:
            pid = _read_pid(self.pid_file(component))
            out[component] = pid if pid is not None and _alive(pid) else None
        return out

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=3) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self, *, timeout: float = 240) -> None:
        """Migrate the metadata DB, start every component that is not running, wait for the API."""
        env = self._child_env()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        running = self.running()
        for component in COMPONENTS:
            if running[component] is not None:
                continue
            argv = [sys.executable, "-m", "airflow", component]
            if component == "api-server":
                argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
            with self.log_file(component).open("ab") as log:
                proc = subprocess.Popen(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self.pid_file(component).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [c for c, pid in self.running().items() if pid is None]
            if dead:
                raise RuntimeError(
                    f"{', '.join(dead)} exited at start; see {self.log_file(dead[0])}:\n{_tail(self.log_file(dead[0]))}"
                )
            if self.healthy():
                return
            time.sleep(2)
        raise TimeoutError(
            f"the Airflow API server did not answer on {self.url} within {timeout:.0f}s; see {self.log_file('api-server')}"
        )

    def stop(self, *, timeout: float = 30) -> list[str]:
        """Stop every component this service started (its whole process group); return their names."""
        stopped = []
        for component, pid in self.running().items():
            if pid is None:
                continue
            _signal_group(pid, signal.SIGTERM)
            stopped.append(component)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid is not None for pid in self.running().values()):
            time.sleep(0.5)
        for pid in self.running().values():
            if pid is not None:
                _signal_group(pid, signal.SIGKILL)
        for component in COMPONENTS:
            self.pid_file(component).unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "healthy": self.healthy(), "components": self.running()}


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def config_record(home: Path) -> Path:
    """Where a home keeps the config folder it was started with."""
    return Service(home).run_dir / "config_dir"


class HomeConfigError(RuntimeError):
    """A command pointed a home at another config folder than the one it was started with."""


def pin_config_dir(home: Path, *, record: bool) -> Path | None:
    """The config folder of the home ``home``: one per home, so restarting never changes the DAGs.

    The first start (``record``) writes the folder in force (``MLOPS_CONFIG_DIR``, else
    ``config/``) into the home; every later command of the home uses it: it is put in
    ``MLOPS_CONFIG_DIR`` when that is unset, and a different one is refused. Returns the folder in
    force, or None when nothing is recorded and nothing is to be.
    """
    from mlops.core.settings import config_dir_asked, load_settings, set_environment

    path = config_record(home)
    asked = config_dir_asked()
    if path.exists():
        recorded = Path(path.read_text().strip())
        if asked is not None and asked != recorded:
            raise HomeConfigError(
                f"the home {home} runs the use cases of {recorded}, but MLOPS_CONFIG_DIR={asked} "
                "points elsewhere: unset MLOPS_CONFIG_DIR, or give the other folder its own "
                "MLOPS_HOME (or `make clean` this one to start over)"
            )
        set_environment({"MLOPS_CONFIG_DIR": str(recorded)})
        return recorded
    if not record:
        return None
    config_dir = load_settings().config_dir
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{config_dir}\n")
    tmp.replace(path)
    set_environment({"MLOPS_CONFIG_DIR": str(config_dir)})
    return config_dir


def service_for_settings() -> Service:
    from mlops.core.settings import load_settings

    settings = load_settings()
    return Service(home=settings.home, port=settings.service_port)
