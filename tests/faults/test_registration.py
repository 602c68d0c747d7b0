"""A training task that dies after registering its model and is retried registers no second version."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.model import registry
from mlops.model.registration import train_and_register
from mlops.model.training_set import prepare_training_set
from tests.e2e.helpers import ingest_days

pytestmark = pytest.mark.faults
DAYS = [dt.date(2026, 8, 1) + dt.timedelta(days=i) for i in range(6)]
RUN = "scheduled__2026-08-06T00:00:00+00:00"


def test_retry_after_dying_between_register_and_tag_reuses_the_version(fresh_home: Path) -> None:
    uc, lake = get_use_case("churn"), get_lake()
    store = ParquetFeatureStore(lake)
    ingest_days("churn", DAYS, store, rows=500)
    manifest = prepare_training_set(uc, DAYS[-1], lake, store, RUN)
    first = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id=RUN,
        reason="fault test",
    )

    # The state a task killed right after registering leaves: a version without its lineage tags.
    client = registry.configure_mlflow()
    name = uc.registered_model_name
    for key in ("airflow_run_id", "training_set_hash", "feature_partitions", "git_commit"):
        client.delete_model_version_tag(name, first["version"], key)

    again = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id=RUN,
        reason="fault test",
    )
    assert again["version"] == first["version"] and again["run_id"] == first["run_id"]
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [int(first["version"])]
    tags = client.get_model_version(name, first["version"]).tags
    assert tags["airflow_run_id"] == RUN and tags["training_set_hash"] == manifest["training_set_hash"]
    assert "feature_partitions" in tags

    # Another Airflow run with the same data is a new version, not a reuse.
    other = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id="manual__other",
        reason="fault test",
    )
    assert other["version"] != first["version"]
