"""The third-party libraries a task process should find already imported.

Airflow forks each task from a long-lived process: a Celery worker on the production stack
(:mod:`mlops.orchestration.worker`), a LocalExecutor worker in the embedded setting
(:mod:`mlops.orchestration.executor`). What that process has imported is in the task's memory
from its first instruction; without it, each task imports its libraries again (Great
Expectations alone takes about 4.5 s, paid by every data task of every day).

Only third-party libraries: the project's own code (``dags/``, ``include/mlops``) is imported by
each task, so a deploy takes effect at the next task. None of these starts a thread on import,
so forking after them is safe (``tests/unit/orchestration/test_worker.py``).
"""

from __future__ import annotations

import importlib

PRELOAD = (
    # the data half: parse, checks, features, stores
    "pandas",
    "pyarrow.csv",
    "pyarrow.feather",
    "pyarrow.parquet",
    "pyarrow.compute",
    "psycopg2",
    "great_expectations",
    "great_expectations.render.renderer",
    "great_expectations.render.view",
    # the model half: training, registry, drift
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.inspection",
    "sklearn.metrics",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlflow",
    "evidently",
)


def preload() -> None:
    """Import every module of :data:`PRELOAD` (an import error propagates: the lock is broken)."""
    for name in PRELOAD:
        importlib.import_module(name)
