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


def ingest_days(use_case: str, days: list[dt.date], store: Any, *, rows: int = 400) -> None:
    """Land each day and run the data pipeline's task functions on it in process: archive,
    validate, materialize into ``store``."""
    from mlops.core.lake import get_lake
    from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch

    uc, lake, settings = get_use_case(use_case), get_lake(), load_settings()
    for day in days:
        land(use_case, day, rows=rows)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        materialize_features(uc, day, lake, store)


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
