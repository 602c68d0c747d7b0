"""The Celery workers' configuration: what a worker imports before it forks its tasks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Each test imports every preloaded library (GX, pandas, scikit-learn, MLflow ...) in a fresh
# interpreter: tens of seconds, so not in the fast tier.
pytestmark = pytest.mark.slow

START_A_WORKER_LOADER = textwrap.dedent(
    """
    import json, sys, threading
    from celery import Celery
    from mlops.orchestration.worker import CELERY_CONFIG, PRELOAD
    from airflow.providers.celery.executors.default_celery import get_default_celery_config
    from airflow.configuration import conf

    app = Celery("airflow.providers.celery.executors.celery_executor", config_source=CELERY_CONFIG)
    before = set(sys.modules)
    app.loader.init_worker()  # what `celery worker` does before it starts its pool
    loaded = set(sys.modules) - before
    print(json.dumps({
        "preload": list(PRELOAD),
        "missing": [m for m in PRELOAD if m not in sys.modules],
        "project_loaded": sorted(m for m in loaded if m.split(".")[0] in {"mlops", "dags"}),
        "threads": [t.name for t in threading.enumerate()],
        "airflow_defaults_kept": all(
            CELERY_CONFIG[k] == v for k, v in get_default_celery_config(conf).items()
        ),
    }))
    """
)


def test_a_worker_imports_the_libraries_once_and_stays_safe_to_fork() -> None:
    out = subprocess.run(
        [sys.executable, "-c", START_A_WORKER_LOADER], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert "great_expectations" in report["preload"] and "pandas" in report["preload"]
    assert report["missing"] == []  # Celery's loader imported every one
    # Tasks are forked from the worker: a thread started by an import would not survive the
    # fork and could leave a lock held in the task.
    assert report["threads"] == ["MainThread"]
    # The project's code is not frozen into the worker: each task imports the deployed version.
    assert report["project_loaded"] == []
    assert report["airflow_defaults_kept"]


RUN_AN_EMBEDDED_WORKER = textwrap.dedent(
    """
    import json, multiprocessing, sys, threading, types
    from mlops.orchestration.executor import EXECUTOR, PreloadingLocalExecutor, _run_preloaded_worker
    from mlops.dev.embedded import EXECUTOR as EMBEDDED
    from mlops.orchestration.preload import PRELOAD

    assert [m for m in PRELOAD if m in sys.modules] == [], "the executor's own import loads nothing heavy"
    tasks, results = multiprocessing.SimpleQueue(), multiprocessing.Queue()
    tasks.put(None)  # the poison pill: the worker starts, then stops before any task
    _run_preloaded_worker(
        logger_name="test", input=tasks, output=results,
        unread_messages=multiprocessing.Value("I"), team_conf=types.SimpleNamespace(team_name=None),
    )
    print(json.dumps({
        "missing": [m for m in PRELOAD if m not in sys.modules],
        "project_loaded": sorted(
            m for m in sys.modules if m.startswith("mlops.") and m.split(".")[1] not in {"orchestration", "dev", "core"}
        ),
        "threads": [t.name for t in threading.enumerate()],
        "selected_by_embedded": EXECUTOR == EMBEDDED and EXECUTOR.endswith(PreloadingLocalExecutor.__name__),
    }))
    """
)


def test_an_embedded_executor_worker_imports_the_libraries_before_its_first_task() -> None:
    out = subprocess.run(
        [sys.executable, "-c", RUN_AN_EMBEDDED_WORKER],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["missing"] == []
    assert report["threads"] == ["MainThread"]  # the worker forks each task: no thread may be left
    assert report["project_loaded"] == []  # each task imports the deployed project code itself
    assert report["selected_by_embedded"]
