"""The promotion gate fails closed: a champion it cannot load never lets a challenger through."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mlops.core.config import SliceSpec, get_use_case
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
    trained = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters=hyperparameters or {},
        dag_id="churn_training",
        airflow_run_id=run_id,
        reason="fault test",
    )
    return trained, manifest


def test_an_unloadable_champion_stops_the_gate(fresh_home: Path) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    for day in DAYS:
        land("churn", day, rows=600)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        materialize_features(uc, day, lake, ParquetFeatureStore(lake))
    first, manifest = _train(DAYS[5], "manual__v1")
    assert evaluate_and_promote(
        uc, first, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__v1"
    )["promoted"]
    challenger, manifest = _train(DAYS[7], "manual__v2")

    # The champion's artifacts vanish (a storage outage, a deleted bucket prefix).
    client = registry.configure_mlflow()
    champion = registry.alias_version(client, uc.registered_model_name, registry.CHAMPION)
    artifacts = Path(
        urlparse(client.get_model_version_download_uri(uc.registered_model_name, champion.version)).path
    )
    shutil.rmtree(artifacts)

    with pytest.raises(Exception) as raised:
        evaluate_and_promote(
            uc, challenger, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__v2"
        )
    assert "first model" not in str(raised.value)
    # Production is unchanged and no decision was recorded for the challenger.
    assert (
        registry.alias_version(client, uc.registered_model_name, registry.CHAMPION).version
        == champion.version
    )
    assert [h["version"] for h in registry.promotion_history(lake, "churn")] == [first["version"]]


def _shuffle_training_labels(manifest: dict, seed: int) -> None:
    """Replace the training split's labels by a permutation of themselves: a model fitted to noise."""
    import numpy as np

    from mlops.core import layout
    from mlops.data.feature_store import parquet_writer
    from mlops.data.features import LABEL
    from mlops.model.training_set import read_split

    lake = get_lake()
    train = read_split(lake, manifest, "train")
    train[LABEL] = np.random.default_rng(seed).permutation(train[LABEL].to_numpy())
    path = layout.training_split(manifest["use_case"], manifest["interval"], manifest["run_key"], "train")
    lake.write_with(path, parquet_writer(train))


def test_the_gate_records_its_evidence_and_refuses_noise_and_unjudgeable_slices(fresh_home: Path) -> None:
    """Through the registry: a first model fitted to shuffled labels is refused by the baseline; a real
    one with a slice the holdout lacks is refused naming it; the real one as configured is promoted."""
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    for day in DAYS:
        land("churn", day, rows=600)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        materialize_features(uc, day, lake, ParquetFeatureStore(lake))
    client = registry.configure_mlflow()
    gate = {"mode": "auto", "dag_id": "churn_training"}

    noise_manifest = prepare_training_set(uc, DAYS[6], lake, ParquetFeatureStore(lake), "manual__noise")
    _shuffle_training_labels(noise_manifest, seed=0)
    noise = train_and_register(
        uc,
        noise_manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id="manual__noise",
        reason="noise",
    )
    # The prior baseline's holdout metrics are logged for a reader of the run.
    assert client.get_run(noise["run_id"]).data.metrics["baseline.holdout_roc_auc"] == 0.5
    record = evaluate_and_promote(uc, noise, noise_manifest, lake, airflow_run_id="manual__noise", **gate)
    assert record["outcome"] == "rejected" and not record["promoted"]
    assert record["baseline"]["passed"] is False and record["baseline"]["value"] == 0.5
    assert "than the prior baseline on roc_auc" in record["reason"]
    assert registry.alias_version(client, uc.registered_model_name, registry.CHAMPION) is None

    slices = [*uc.promotion.slices, SliceSpec(column="tenure_band")]
    missing = uc.model_copy(update={"promotion": uc.promotion.model_copy(update={"slices": slices})})
    real, manifest = _train(DAYS[7], "manual__missing_slice")
    record = evaluate_and_promote(missing, real, manifest, lake, airflow_run_id="manual__missing", **gate)
    assert record["outcome"] == "rejected"
    assert "declared slice column 'tenure_band' is not in the holdout" in record["reason"]
    assert record["baseline"]["passed"] is True and record["sanity"]["passed"] is True
    assert registry.alias_version(client, uc.registered_model_name, registry.CHAMPION) is None

    record = evaluate_and_promote(uc, real, manifest, lake, airflow_run_id="manual__configured", **gate)
    assert record["outcome"] == "promoted", record["reason"]
    assert record["reason"].startswith("first model")
    assert "beats the prior baseline on roc_auc" in record["reason"]
    assert record["sanity"]["predicted_classes"] == [0, 1] and record["failed_checks"] == []
    by_value = {(s["column"], s["value"]): s for s in record["slices"]}
    assert {c for c, _ in by_value} == {"plan", "region"}
    assert {v for c, v in by_value if c == "plan"} == {"basic", "standard", "premium"}
    assert sum(s["rows"] for (c, _), s in by_value.items() if c == "plan") == record["holdout_rows"]
    judged = [s for s in by_value.values() if s["status"] == "ok"]
    assert judged and all(s["vs_champion"] is None and s["vs_baseline"] is not None for s in judged)
    # The ledger holds the evidence.
    assert registry.promotion_history(lake, "churn")[-1]["slices"] == record["slices"]
