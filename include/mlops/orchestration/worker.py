"""The Celery workers' configuration (production stack): Airflow's own, plus the libraries the
tasks need, imported once when a worker starts.

Airflow runs every task in a process forked from its worker, so what the worker has imported is
already in the task's memory. Without this, each task imports its libraries again: Great
Expectations alone takes about 4.5 s, paid by every mapped ``check_partition`` of a large day
(``bench/README.md``). ``[celery] celery_config_options`` points at ``CELERY_CONFIG``; Celery
imports :data:`~mlops.orchestration.preload.PRELOAD` in the worker's main process before it
forks its pool (its ``imports`` setting). After the locked libraries change, restart the
workers (a new image does).
"""

from __future__ import annotations

from typing import Any

from airflow.configuration import conf
from airflow.providers.celery.executors.default_celery import get_default_celery_config

from mlops.orchestration.preload import PRELOAD

CELERY_CONFIG: dict[str, Any] = {**get_default_celery_config(conf), "imports": PRELOAD}
"""Airflow's default Celery configuration, with the preload; ``[celery] celery_config_options``."""
