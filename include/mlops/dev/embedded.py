"""Defaults for the embedded setting: Airflow (SQLite, LocalExecutor) and MLflow under ``var/``.

Only fills in what the environment does not already set, so the production stack's variables
always win. Must run before ``airflow`` is imported.
"""

from __future__ import annotations

from pathlib import Path

from mlops.core.settings import apply_env_defaults, home_default, project_root

# The executor's module path, written out: importing it here would import Airflow too early.
EXECUTOR = "mlops.orchestration.executor.PreloadingLocalExecutor"


def apply_embedded_defaults() -> dict[str, str]:
    """Fill in the embedded setting's Airflow variables; return the values in force."""
    root = project_root()
    home = home_default()
    values = apply_env_defaults(
        {
            "MLOPS_HOME": str(home),
            "AIRFLOW_HOME": f"{home}/airflow",
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # LocalExecutor whose workers import pandas, GX, scikit-learn, MLflow once, not per task.
            "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow/airflow.db",
            # INFO: a task's log (what the UI shows) carries what the docs promise it says, e.g.
            # why a task was skipped ("no champion yet") or which day a run with no day took.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "DO_NOT_TRACK": "true",
        }
    )
    Path(values["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return values
