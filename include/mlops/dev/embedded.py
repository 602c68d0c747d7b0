"""Defaults for the embedded setting: Airflow (SQLite, LocalExecutor) and MLflow under ``var/``.

Only fills in what the environment does not already set, so the production stack's variables
always win. Must run before ``airflow`` is imported.
"""

from __future__ import annotations

import os

from mlops.core.settings import project_root


def apply_embedded_defaults() -> dict[str, str]:
    root = project_root()
    home = os.environ.setdefault("MLOPS_HOME", str(root / "var"))
    defaults = {
        "AIRFLOW_HOME": f"{home}/airflow",
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
    return defaults
