"""Platform settings: where the lake, the feature store, MLflow and Slack live.

Every setting comes from the environment, so the same code runs on the embedded default
(everything under one project-local folder) and on the production stack (S3, PostgreSQL,
an MLflow server). Nothing here is read at import time of a DAG file beyond plain env lookups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def project_root() -> Path:
    """The checkout this package is installed from (editable install) or the working directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "config").is_dir():
            return parent
    return Path.cwd()


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

    @property
    def embedded(self) -> bool:
        return self.lake_uri.startswith("file://")


def load_settings() -> Settings:
    """Read the platform settings from the environment (``MLOPS_*`` and ``MLFLOW_TRACKING_URI``)."""
    root = project_root()
    home = Path(os.environ.get("MLOPS_HOME", root / "var")).resolve()
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
    )
