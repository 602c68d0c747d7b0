"""Per-prediction contributions: logged with the training run, written beside each score on request."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.model import explain, registry
from mlops.model.gate import evaluate_and_promote
from mlops.model.registration import train_and_register
from mlops.model.scoring import score_partition
from mlops.model.training_set import prepare_training_set
from tests.e2e.helpers import ingest_days
from tests.support.service import config_with

DAYS = [dt.date(2026, 2, 1) + dt.timedelta(days=i) for i in range(6)]


@pytest.mark.slow  # the whole loop in process: six days ingested, trained, promoted, scored
def test_contributions_are_logged_and_written_beside_scores(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config_with(fresh_home, {"churn": {"scoring.explain": True}})))
    uc, lake = get_use_case("churn"), get_lake()
    store = ParquetFeatureStore(lake)
    ingest_days("churn", DAYS, store, rows=300)
    manifest = prepare_training_set(uc, DAYS[-1], lake, store, "manual__explain")
    trained = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id="manual__explain",
        reason="t",
    )
    assert evaluate_and_promote(
        uc, trained, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__explain"
    )["promoted"]

    client = registry.configure_mlflow()
    run = client.get_run(trained["run_id"])
    assert {f"contrib.{name}" for name in uc.feature_names} <= set(run.data.metrics)
    import mlflow

    base = mlflow.artifacts.load_dict(f"runs:/{trained['run_id']}/{explain.BASELINE_ARTIFACT}")
    assert set(base) == set(uc.feature_names)

    score_partition(uc, DAYS[-1], lake, store)
    with lake.open_read(layout.predictions_file("churn", DAYS[-1])) as fh:
        scored = pd.read_parquet(fh)
    contrib = [f"contrib_{name}" for name in uc.feature_names]
    assert set(contrib) <= set(scored.columns)
    # Recomputed in process on the same rows, the contributions agree.
    model = registry.load_model(uc.registered_model_name, trained["version"])
    features = store.read_features("churn", DAYS[-1], DAYS[-1])
    again = explain.contributions(model, features[uc.feature_names], base, uc.task)
    assert scored[contrib].to_numpy() == pytest.approx(again[contrib].to_numpy(), abs=1e-9)
    # A row whose feature already sits at the baseline gets no contribution from it.
    at_base = features[uc.feature_names].head(1).copy()
    for name, value in base.items():
        at_base[name] = value
    assert explain.contributions(model, at_base, base, uc.task).abs().to_numpy().max() == pytest.approx(
        0.0, abs=1e-12
    )


def test_scoring_with_explanations_names_a_champion_run_without_a_baseline(fresh_home: Path) -> None:
    from mlops.model.scoring import _explain_baseline

    client = registry.configure_mlflow()
    experiment = client.create_experiment("no-baseline")
    run = client.create_run(experiment)  # a training run from before explanations were logged
    client.set_terminated(run.info.run_id)
    with pytest.raises(RuntimeError, match=f"{run.info.run_id} has no {explain.BASELINE_ARTIFACT}"):
        _explain_baseline(run.info.run_id)
