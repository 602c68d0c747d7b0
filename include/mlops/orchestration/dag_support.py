"""Shared wiring for the DAG files: loading configs, defaults, params and the interval of a run.

Kept free of heavy imports: DAG files import this at parse time.
"""

from __future__ import annotations

import datetime as dt
import logging
from datetime import timedelta
from typing import Any

from mlops.core.config import ConfigError, UseCase, load_use_cases
from mlops.core.settings import load_settings

log = logging.getLogger(__name__)

TAG = "mlops"


def use_cases_for_dags() -> tuple[dict[str, UseCase], dict[str, ConfigError]]:
    """All use cases; broken files are logged and returned apart so only their own DAGs break."""
    good, bad = load_use_cases(load_settings().config_dir)
    for err in bad.values():
        log.error("use case config rejected: %s", err)
    return good, bad


def default_args(use_case: UseCase | None, *, retries: int = 2) -> dict[str, Any]:
    from mlops.core.alerts import task_failure_callback

    return {
        "owner": use_case.owner if use_case else "ml-platform",
        "retries": retries,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": task_failure_callback,
    }


def start_date(use_case: UseCase) -> dt.datetime:
    return dt.datetime.fromisoformat(use_case.schedules.start_date).replace(tzinfo=dt.UTC)


def interval_param(description: str) -> Any:
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        format="date",
        title="Interval (day)",
        description=description,
    )


def request_id_param() -> Any:
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        maxLength=128,
        pattern="^[A-Za-z0-9._:-]+$",
        title="Request id",
        description="Id of the upstream request that started this run (for tracing and de-duplication).",
    )


def resolve_interval(context: Any) -> dt.date:
    """The day a run works on: the ``interval`` param, else the run's data interval start."""
    value = context["params"].get("interval")
    if value:
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"param 'interval'={value!r} is not a date (YYYY-MM-DD)") from None
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:
        raise ValueError(
            "this run has no data interval (triggered without a logical date): pass conf {'interval': 'YYYY-MM-DD'}"
        )
    return start.date()


def register_dags(namespace: dict[str, Any], kind: str, build: Any) -> None:
    """Put one ``<use case>_<kind>`` DAG per use case into a DAG file's globals.

    A use case whose config is invalid gets the stand-in from :func:`broken_config_dag` instead,
    so it breaks only its own DAGs.
    """
    good, bad = use_cases_for_dags()
    for use_case in good.values():
        namespace[use_case.dag_id(kind)] = build(use_case)
    for name, error in bad.items():
        namespace[f"{name}_{kind}"] = broken_config_dag(f"{name}_{kind}", error)


def broken_config_dag(dag_id: str, error: ConfigError) -> Any:
    """A stand-in DAG for a use case whose config is invalid: it shows and raises the error."""
    from airflow.sdk import DAG, task

    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        is_paused_upon_creation=True,
        tags=[TAG, "config-error"],
        doc_md=f"**This use case's configuration is invalid.** Fix it and the real DAG returns.\n\n```\n{error}\n```",
        default_args={"owner": "ml-platform", "retries": 0},
    ) as dag:

        @task(task_id="config_error")
        def config_error() -> None:
            raise error

        config_error()
    return dag


def worker_name() -> str:
    """Which worker ran a task: ``MLOPS_WORKER_NAME`` (set per Celery worker), else the host name."""
    import os
    import socket

    return os.environ.get("MLOPS_WORKER_NAME") or socket.gethostname()
