"""Test settings: every test session gets its own MLOPS_HOME and Airflow home (SQLite).

The environment is set here, before Airflow is imported by any test module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-test-"))

os.environ["MLOPS_HOME"] = str(_SESSION_HOME)
os.environ["MLOPS_CONFIG_DIR"] = str(ROOT / "config")
for key in ("MLOPS_LAKE_URI", "MLOPS_LANDING_URI", "MLFLOW_TRACKING_URI", "MLOPS_MLFLOW_ARTIFACTS_URI", "MLOPS_SLACK_WEBHOOK_URL", "MLOPS_FEATURE_STORE"):
    os.environ.pop(key, None)
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_HOME}/airflow/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["GX_ANALYTICS_ENABLED"] = "False"
os.environ["MLFLOW_ENABLE_TELEMETRY"] = "false"
os.environ["DO_NOT_TRACK"] = "true"
(_SESSION_HOME / "airflow").mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for dag.test() runs."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return _SESSION_HOME / "airflow" / "airflow.db"


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake, landing area and MLflow store of this test's own (the Airflow DB is shared)."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS_URI", f"file://{tmp_path}/mlflow/artifacts")
    return tmp_path
