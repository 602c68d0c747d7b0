"""The promotion gate fails closed: a champion it cannot load never lets a challenger through."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch
from mlops.model import registry
from mlops.model.gate import evaluate_and_promote
from mlops.model.registration import train_and_register
from mlops.model.training_set import prepare_training_set
from tests.e2e.helpers import land

pytestmark = pytest.mark.faults
DAYS = [dt.date(2026, 7, 1) + dt.timedelta(days=i) for i in range(8)]


def _train(day: dt.date, run_id: str, hyperparameters: dict | None = None) -> tuple:
    uc, lake = get_use_case("churn"), get_lake()
    store = ParquetFeatureStore(lake)
    manifest = prepare_training_set(uc, day, lake, store, run_id)
    trained = train_and_register(uc, manifest, lake, hyperparameters=hyperparameters or {}, dag_id="churn_training", airflow_run_id=run_id, reason="fault test")
    return trained, manifest


def test_an_unloadable_champion_stops_the_gate(fresh_home: Path) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    for day in DAYS:
        land("churn", day, rows=600)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        materialize_features(uc, day, lake, ParquetFeatureStore(lake))
    first, manifest = _train(DAYS[5], "manual__v1")
    assert evaluate_and_promote(uc, first, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__v1")["promoted"]
    challenger, manifest = _train(DAYS[7], "manual__v2")

    # The champion's artifacts vanish (a storage outage, a deleted bucket prefix).
    client = registry.configure_mlflow()
    champion = registry.alias_version(client, uc.registered_model_name, registry.CHAMPION)
    artifacts = Path(urlparse(client.get_model_version_download_uri(uc.registered_model_name, champion.version)).path)
    shutil.rmtree(artifacts)

    with pytest.raises(Exception) as raised:
        evaluate_and_promote(uc, challenger, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__v2")
    assert "first model" not in str(raised.value)
    # Production is unchanged and no decision was recorded for the challenger.
    assert registry.alias_version(client, uc.registered_model_name, registry.CHAMPION).version == champion.version
    assert [h["version"] for h in registry.promotion_history(lake, "churn")] == [first["version"]]
