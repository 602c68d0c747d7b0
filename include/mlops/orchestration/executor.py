"""The embedded setting's executor: Airflow's LocalExecutor, whose workers import the libraries once.

A LocalExecutor worker is a long-lived process that supervises one task at a time, forking the
task's process from itself. :class:`PreloadingLocalExecutor` has each worker import
:data:`~mlops.orchestration.preload.PRELOAD` when it starts, before it takes its first task, as
the production stack's Celery workers do; a small day then costs its work, not its imports
(``bench/run_overhead.py``). The scheduler itself imports none of it.

Selected by ``AIRFLOW__CORE__EXECUTOR=mlops.orchestration.executor.PreloadingLocalExecutor``
(:mod:`mlops.dev.embedded` sets it unless the environment names another executor).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from airflow.executors import local_executor
from airflow.executors.local_executor import LocalExecutor

from mlops.orchestration.preload import preload

EXECUTOR = f"{__name__}.PreloadingLocalExecutor"
"""The value of ``[core] executor`` that selects it."""


def _run_preloaded_worker(**kwargs: Any) -> None:
    """A LocalExecutor worker that imports the libraries first, then takes tasks as usual."""
    preload()
    local_executor._run_worker(**kwargs)


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose worker processes preload the heavy libraries the tasks use."""

    def _spawn_worker(self) -> None:
        # LocalExecutor._spawn_worker with our worker function; the queues are the executor's.
        process = multiprocessing.Process(
            target=_run_preloaded_worker,
            kwargs={
                "logger_name": self.log.name,
                "input": self.activity_queue,
                "output": self.result_queue,
                "unread_messages": self._unread_messages,
                "team_conf": self.conf,
            },
        )
        process.start()
        assert process.pid is not None  # set by start()
        self.workers[process.pid] = process
