"""Helpers for end-to-end tests that run the real DAGs with dag.test() on simulator data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from mlops.core.config import get_use_case
from mlops.core.settings import load_settings
from mlops.data.ingest import source_uri
from mlops.dev.simulator import Drift, delivered, make_batch_bytes

ROOT = Path(__file__).resolve().parents[2]


def land(
    use_case: str, day: dt.date, *, rows: int = 400, bad: str | None = None, drift: Drift | None = None
) -> bytes:
    """Put a simulated upstream batch where the use case's source reads it; return the bytes."""
    uc = get_use_case(use_case)
    data = make_batch_bytes(use_case, day, uc.source.format, rows=rows, bad=bad, drift=drift)
    path = ObjectStoragePath(source_uri(uc, day, load_settings().landing_uri))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    delivered(path, day)
    return data


def run_dag(dag: Any, day: dt.date | None, conf: dict[str, Any] | None = None) -> Any:
    logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day else None
    return dag.test(
        logical_date=logical,
        run_conf=conf if conf is not None else ({"interval": day.isoformat()} if day else None),
    )


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags
