"""The Celery workers' configuration: what a worker imports before it forks its tasks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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
