"""Test settings: every test session gets its own MLOPS_HOME and Airflow home (SQLite).

The environment is set here, before Airflow is imported by any test module.

Tests never write into the checkout: the files of the repository are listed when the session
starts and again when it ends; anything new, changed or gone fails the run (exit status 1), with
the paths named. Caches and the virtualenv are not part of the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-test-"))

os.environ["MLOPS_HOME"] = str(_SESSION_HOME)
os.environ["MLOPS_CONFIG_DIR"] = str(ROOT / "config")
for key in (
    "MLOPS_LAKE_URI",
    "MLOPS_LANDING_URI",
    "MLFLOW_TRACKING_URI",
    "MLOPS_MLFLOW_ARTIFACTS_URI",
    "MLOPS_SLACK_WEBHOOK_URL",
    "MLOPS_FEATURE_STORE",
):
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


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its schema migrated, made once: migrating a new one costs a second."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    client.search_experiments()
    client.search_registered_models()
    return path


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _empty_mlflow_db: Path) -> Path:
    """A lake, landing area and MLflow store of this test's own (the Airflow DB is shared)."""
    (tmp_path / "mlflow").mkdir()
    shutil.copyfile(_empty_mlflow_db, tmp_path / "mlflow" / "mlflow.db")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS_URI", f"file://{tmp_path}/mlflow/artifacts")
    return tmp_path


# -- the checkout is left as it was found -------------------------------------------------------------

# Directories that are not the checkout's content: tools' caches, the virtualenv, git itself.
NOT_CHECKOUT = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__"}
_CHECKOUT_BEFORE = pytest.StashKey[dict[str, Any]]()


def checkout_state(root: Path = ROOT) -> dict[str, Any]:
    """Every file (its mtime and size) and directory under ``root``, but the caches and the virtualenv."""
    state: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in NOT_CHECKOUT and not d.endswith(".egg-info")]
        rel = Path(dirpath).relative_to(root)
        for name in dirnames:
            state[f"{rel / name}/"] = "dir"
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            try:
                stat = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # removed while listing
                continue
            state[str(rel / name)] = (stat.st_mtime_ns, stat.st_size)
    return state


def checkout_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changes = [f"new:     {path}" for path in sorted(after.keys() - before.keys())]
    changes += [
        f"changed: {path}" for path in sorted(before.keys() & after.keys()) if before[path] != after[path]
    ]
    changes += [f"gone:    {path}" for path in sorted(before.keys() - after.keys())]
    return changes


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_CHECKOUT_BEFORE] = checkout_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_CHECKOUT_BEFORE, None)
    if before is None:
        return
    changes = checkout_changes(before, checkout_state())
    if not changes:
        return
    # The exit status pytest returns is read from the session after this hook: the run fails.
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    lines = [f"the tests changed the checkout {ROOT} (write under tmp_path instead):", *changes]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "checkout changed by the tests", red=True, bold=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines), file=sys.stderr)
