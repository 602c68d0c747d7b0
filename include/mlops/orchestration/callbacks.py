"""Callbacks every task carries: a task that fails for good alerts the team once per DAG run."""

from __future__ import annotations

import logging
from typing import Any

from mlops.core import layout
from mlops.core.alerts import deliver_pending, enqueue, failure_alert

log = logging.getLogger(__name__)


def task_failure_callback(context: Any) -> None:
    """on_failure_callback for every task: one alert per failed DAG run (not per retry or task)."""
    from mlops.core.lake import get_lake

    ti = context["ti"]
    dag_id, run_id = ti.dag_id, ti.run_id
    error = context.get("exception")
    alert = failure_alert(
        dag_id=dag_id,
        run_id=run_id,
        task_id=ti.task_id,
        error=f"{type(error).__name__}: {error}" if error else "unknown error",
        log_url=getattr(ti, "log_url", None),
    )
    scope = layout.failure_scope(dag_id)
    try:
        lake = get_lake()
        enqueue(lake, scope, alert)  # a no-op if this run already queued or sent its alert
        deliver_pending(lake, scope)  # also retries earlier failure alerts Slack did not take
    except Exception:  # a broken alert path must not mask the task's own failure
        log.exception("could not record or send the failure alert for %s %s", dag_id, run_id)
