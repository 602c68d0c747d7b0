"""Candidate search through the real training DAG: mapped candidates, child runs, the best gated."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch
from mlops.model import registry
from mlops.model.search import expand_candidates
from tests.e2e.helpers import land, load_dags, run_dag
from tests.support.service import config_with

pytestmark = pytest.mark.slow
DAYS = [dt.date(2026, 4, 1) + dt.timedelta(days=i) for i in range(8)]
SEARCH = {
    "candidates": [
        {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "hyperparameters": {"C": 0.5, "max_iter": 500},
        },
        # Fails when fitted (not a HistGradientBoosting parameter): recorded, the run goes on.
        {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "hyperparameters": {"no_such_parameter": 1},
        },
    ],
    "space": {
        "learning_rate": {"low": 0.03, "high": 0.3, "log": True},
        "max_leaf_nodes": {"values": [7, 15, 31]},
    },
    "sampler": "random",
    "budget": 5,
}


@pytest.fixture
def search_config(fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = config_with(fresh_home, {"churn": {"model.search": SEARCH}})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
    return config


def test_candidates_are_deterministic_and_narrowed_by_the_budget(search_config: Path) -> None:
    uc = get_use_case("churn")
    first, again = expand_candidates(uc), expand_candidates(uc)
    assert first == again and len(first) == 5
    assert first[0]["estimator"] == uc.model.estimator and first[0]["hyperparameters"] == dict(
        uc.model.hyperparameters
    )
    assert [c["estimator"].rsplit(".", 1)[-1] for c in first[:3]] == [
        "HistGradientBoostingClassifier",
        "LogisticRegression",
        "HistGradientBoostingClassifier",
    ]
    sampled = first[3:]
    assert all(
        0.03 <= c["hyperparameters"]["learning_rate"] <= 0.3
        and c["hyperparameters"]["max_leaf_nodes"] in (7, 15, 31)
        for c in sampled
    )
    assert [c["name"] for c in expand_candidates(uc, budget=2)] == [c["name"] for c in first[:2]]
    assert len(expand_candidates(uc, budget=12)) == 12
    with pytest.raises(ValueError, match=r"outside 1\.\.200"):
        expand_candidates(uc, budget=0)


def test_search_trains_every_candidate_and_gates_the_best(airflow_db: Path, search_config: Path) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    for day in DAYS:
        land("churn", day, rows=600)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        materialize_features(uc, day, lake, ParquetFeatureStore(lake))

    run = run_dag(load_dags()["churn_training"], DAYS[-1])
    assert run.state == "success"
    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    assert sorted(i for (t, i) in tis if t == "train_candidate") == list(range(5))

    client = registry.configure_mlflow()
    version = client.get_model_version(uc.registered_model_name, "1")
    parent = client.get_run(version.run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(children) == 5
    failed = [c for c in children if c.info.status == "FAILED"]
    assert len(failed) == 1 and "no_such_parameter" in failed[0].data.tags["error"]
    metric = f"validation_{uc.promotion.metric}"
    ok = {c.data.tags["candidate"]: c.data.metrics[metric] for c in children if c.info.status == "FINISHED"}
    best = max(ok, key=lambda n: ok[n])
    assert parent.data.tags["best_candidate"] == best
    ranking = json.loads(Path(client.download_artifacts(parent.info.run_id, "candidates.json")).read_text())
    assert ranking["ranking"][0]["name"] == best and ranking["failed"] == [failed[0].data.tags["candidate"]]
    # The registered model is the best candidate, refitted in the training run, then gated.
    assert (
        parent.data.params["estimator"]
        == next(c for c in children if c.data.tags["candidate"] == best).data.params["estimator"]
    )
    history = registry.promotion_history(lake, "churn")
    assert [h["version"] for h in history] == ["1"] and history[0]["promoted"]
