"""Platform settings: where the lake, the feature store, MLflow and Slack live.

Every setting comes from the environment, so the same code runs on the embedded default
(everything under one project-local folder) and on the production stack (S3, PostgreSQL,
an MLflow server). This module is the only place that reads (or fills in) environment
variables; everything else asks :func:`load_settings` (``tests/unit/core/test_settings.py``).

=================================  =========================================================
variable                           meaning (default)
=================================  =========================================================
``MLOPS_HOME``                     project-local state folder (``<checkout>/var``)
``MLOPS_LAKE_URI``                 lake root, ``file://...`` or ``s3://<conn_id>@<bucket>/...``
``MLOPS_LANDING_URI``              where upstream batches land (``$MLOPS_HOME/landing``)
``MLOPS_CONFIG_DIR``               use-case configs and suites (``<checkout>/config``)
``MLOPS_FEATURE_STORE``            ``parquet`` (in the lake) or ``postgres``
``MLOPS_FEATURE_STORE_CONN_ID``    Airflow connection of the PostgreSQL feature store
``MLFLOW_TRACKING_URI``            MLflow tracking and registry (SQLite under ``MLOPS_HOME``)
``MLOPS_MLFLOW_ARTIFACTS_URI``     artifact root for new experiments
``MLOPS_MLFLOW_UI_URL``            base URL of the MLflow UI, for links
``MLOPS_SLACK_WEBHOOK_URL``        incoming-webhook URL (a secret)
``MLOPS_SLACK_CONN_ID``            Airflow connection for Slack (``mlops_slack``)
``MLOPS_GIT_COMMIT``               code version recorded on models (else ``git rev-parse``)
``MLOPS_WORKER_NAME``              this worker's name in task results (else the host name)
``MLOPS_SERVICE_PORT``             port of the embedded service's Airflow API server and UI (8080)
``MLOPS_SERVING_REFRESH_SECONDS``  how often the model server re-resolves ``champion`` (10)
``MLOPS_SERVING_MAX_ROWS``         most rows one prediction request may carry (1000)
``MLOPS_SERVING_FLUSH_ROWS``       the request log is written after this many rows (1000) ...
``MLOPS_SERVING_FLUSH_SECONDS``    ... or this many seconds after its oldest unwritten row (60)
``MLOPS_SERVING_WAL_DIR``          the request log's write-ahead log on local disk (``$MLOPS_HOME/serving/wal``)
``MLOPS_SERVING_WAL_MAX_BYTES``    past this many bytes not yet in the lake, requests get 503 (268435456)
``MLOPS_SERVING_WAL_SYNC``         ``on``: an answer waits for its log record's fsync; ``off``: benchmarks only
``MLOPS_SERVING_DRAIN_SECONDS``    at shutdown, how long the server ships its log to the lake (20)
``MLOPS_FEATURE_REPO``             the team's feature code (``<checkout>/include/feature_repo``)
``MLOPS_FAULT_POINT``              fault-injection tests only: a fault point to die at (unset)
=================================  =========================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_Number = TypeVar("_Number", int, float)


def project_root() -> Path:
    """The checkout this package is installed from (editable install) or the working directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "config").is_dir():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class ServingSettings:
    """The model server (``mlops.serving``): alias refresh, request size, request-log batching."""

    refresh_seconds: float = 10.0
    max_rows: int = 1000
    flush_rows: int = 1000
    flush_seconds: float = 60.0
    # The write-ahead log of answered requests (mlops.serving.request_log): where, how much may
    # wait for the lake, whether an answer waits for its fsync, how long shutdown ships.
    wal_dir: Path = field(default_factory=lambda: home_default() / "serving" / "wal")
    wal_max_bytes: int = 256 * 1024 * 1024
    wal_sync: bool = True
    drain_seconds: float = 20.0


@dataclass(frozen=True)
class Settings:
    home: Path
    lake_uri: str
    landing_uri: str
    config_dir: Path
    feature_store: str
    feature_store_conn_id: str
    mlflow_tracking_uri: str
    mlflow_artifacts_uri: str | None
    slack_conn_id: str
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    slack_webhook_url: str | None = field(default=None, repr=False)  # a secret: never in repr or logs
    git_commit: str | None = None
    worker_name: str | None = None
    service_port: int = 8080
    feature_repo: Path = field(default_factory=lambda: project_root() / "include" / "feature_repo")
    serving: ServingSettings = field(default_factory=ServingSettings)

    @property
    def embedded(self) -> bool:
        return self.lake_uri.startswith("file://")


def load_settings() -> Settings:
    """Read the platform settings from the environment (``MLOPS_*`` and ``MLFLOW_TRACKING_URI``)."""
    root = project_root()
    home = home_default()
    lake = os.environ.get("MLOPS_LAKE_URI") or f"file://{home / 'lake'}"
    landing = os.environ.get("MLOPS_LANDING_URI") or f"file://{home / 'landing'}"
    feature_store = os.environ.get("MLOPS_FEATURE_STORE", "parquet")
    if feature_store not in {"parquet", "postgres"}:
        raise ValueError(
            f"MLOPS_FEATURE_STORE={feature_store!r} is not supported: use 'parquet' or 'postgres'"
        )
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    artifacts = os.environ.get("MLOPS_MLFLOW_ARTIFACTS_URI")
    if artifacts is None and tracking.startswith("sqlite:"):
        artifacts = f"file://{home / 'mlflow' / 'artifacts'}"
    return Settings(
        home=home,
        lake_uri=lake.rstrip("/"),
        landing_uri=landing.rstrip("/"),
        config_dir=Path(os.environ.get("MLOPS_CONFIG_DIR", root / "config")).resolve(),
        feature_store=feature_store,
        feature_store_conn_id=os.environ.get("MLOPS_FEATURE_STORE_CONN_ID", "mlops_feature_store"),
        mlflow_tracking_uri=tracking,
        mlflow_artifacts_uri=artifacts,
        slack_conn_id=os.environ.get("MLOPS_SLACK_CONN_ID", "mlops_slack"),
        mlflow_ui_url=os.environ.get("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/"),
        slack_webhook_url=os.environ.get("MLOPS_SLACK_WEBHOOK_URL") or None,
        git_commit=os.environ.get("MLOPS_GIT_COMMIT") or None,
        worker_name=os.environ.get("MLOPS_WORKER_NAME") or None,
        service_port=_port(os.environ.get("MLOPS_SERVICE_PORT", "8080")),
        feature_repo=Path(
            os.environ.get("MLOPS_FEATURE_REPO") or root / "include" / "feature_repo"
        ).resolve(),
        serving=ServingSettings(
            refresh_seconds=_positive("MLOPS_SERVING_REFRESH_SECONDS", "10", float),
            max_rows=_positive("MLOPS_SERVING_MAX_ROWS", "1000", int),
            flush_rows=_positive("MLOPS_SERVING_FLUSH_ROWS", "1000", int),
            flush_seconds=_positive("MLOPS_SERVING_FLUSH_SECONDS", "60", float),
            wal_dir=Path(os.environ.get("MLOPS_SERVING_WAL_DIR") or home / "serving" / "wal").resolve(),
            wal_max_bytes=_positive("MLOPS_SERVING_WAL_MAX_BYTES", str(256 * 1024 * 1024), int),
            wal_sync=_on_off("MLOPS_SERVING_WAL_SYNC", "on"),
            drain_seconds=_positive("MLOPS_SERVING_DRAIN_SECONDS", "20", float),
        ),
    )


def fault_point() -> str | None:
    """The fault point (``mlops.core.faults``) at which this process kills itself, if any."""
    return os.environ.get("MLOPS_FAULT_POINT") or None


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"MLOPS_SERVICE_PORT={value!r} is not a TCP port (1-65535)")
    return int(value)


def _positive(name: str, default: str, kind: type[_Number]) -> _Number:
    """A setting that must be a finite number above 0; a bad value is refused, naming the variable."""
    raw = os.environ.get(name) or default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}={raw!r} is not {what} above 0 (the default is {default})")
    return value


def _on_off(name: str, default: str) -> bool:
    raw = (os.environ.get(name) or default).strip().lower()
    if raw not in {"on", "off"}:
        raise ValueError(f"{name}={raw!r} is not 'on' or 'off' (the default is {default})")
    return raw == "on"


def apply_env_defaults(defaults: dict[str, str]) -> dict[str, str]:
    """Set each variable the environment does not set yet; return the values now in force.

    Used by the embedded setting before Airflow is imported, so the production stack's own
    variables always win.
    """
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in defaults}


def set_environment(values: dict[str, str]) -> None:
    """Set variables in force from now on, for this process and the children it starts (a
    command that decides a setting, such as the config folder its home runs)."""
    os.environ.update(values)


def config_dir_asked() -> Path | None:
    """``MLOPS_CONFIG_DIR`` (resolved) when it is set, else None: the default was not overridden."""
    asked = os.environ.get("MLOPS_CONFIG_DIR")
    return Path(asked).resolve() if asked else None


def connection_in_environment(conn_id: str) -> bool:
    """Whether Airflow connection ``conn_id`` is given as an ``AIRFLOW_CONN_*`` variable."""
    return bool(os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"))


def child_environment(*, bin_first: Path) -> dict[str, str]:
    """The environment for a child process (an Airflow component), with ``bin_first`` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{bin_first}{os.pathsep}{env.get('PATH', '')}"
    return env


def home_default() -> Path:
    """``MLOPS_HOME`` as set, else ``<checkout>/var``."""
    return Path(os.environ.get("MLOPS_HOME", project_root() / "var")).resolve()
