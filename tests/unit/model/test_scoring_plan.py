"""Which days a scoring run scores: none before a champion, the skipped days once there is one,
never a day already scored with the same champion and the same features."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake, get_lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.features import build_features
from mlops.dev.simulator import simulate_batch
from mlops.model import registry
from mlops.model.scoring import SCORED_WITH, NoChampion, plan_scoring, scored_with

START = dt.date(2026, 4, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(20)]


def commit(store: ParquetFeatureStore, day: dt.date, rows: int = 20, seed_day: dt.date | None = None) -> None:
    """A committed feature partition of ``day``, as the data DAG leaves it."""
    use_case = get_use_case("churn")
    features = build_features(simulate_batch("churn", seed_day or day, rows=rows), use_case)
    if seed_day is not None:  # another delivery of the same day
        features["event_time"] = features["event_time"] + (day - seed_day)
    store.write_partition("churn", day, features, None, use_case.feature_version)


def promote(run_name: str = "first") -> Any:
    """A new version of churn_model holding the champion alias, as the gate leaves it."""
    client = registry.configure_mlflow()
    name = get_use_case("churn").registered_model_name
    if not client.search_registered_models(filter_string=f"name='{name}'"):
        client.create_registered_model(name)
    found = client.get_experiment_by_name("plan")
    experiment_id = found.experiment_id if found else client.create_experiment("plan")
    run = client.create_run(experiment_id, run_name=run_name)
    source = f"runs:/{run.info.run_id}/model"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id)
    client.set_registered_model_alias(name, registry.CHAMPION, version.version)
    return version


def mark_scored(lake: Lake, store: ParquetFeatureStore, day: dt.date, version: Any) -> None:
    """The predictions manifest of ``day`` as scoring writes it with ``version``."""
    use_case = get_use_case("churn")
    made_with = scored_with(use_case, version, store.partitions("churn")[day])
    manifest = {"interval": day.isoformat(), SCORED_WITH: made_with}
    lake.write_json(layout.predictions_manifest("churn", day), manifest)


@pytest.fixture
def store(fresh_home: Path) -> ParquetFeatureStore:
    store = ParquetFeatureStore(get_lake())
    for day in DAYS:
        commit(store, day)
    return store


def test_before_a_champion_there_is_nothing_to_score_with(store: ParquetFeatureStore) -> None:
    expected = r"^no champion yet: train one from the training DAG \(churn_training\)"
    with pytest.raises(NoChampion, match=expected):
        plan_scoring(get_use_case("churn"), [DAYS[-1]], DAYS[-1], get_lake(), store)


def test_the_first_champion_catches_up_on_the_committed_days_never_scored(store: ParquetFeatureStore) -> None:
    use_case = get_use_case("churn")
    version = promote()
    plan = plan_scoring(use_case, [DAYS[-1]], DAYS[-1], get_lake(), store)

    window = use_case.catch_up_days
    assert window == max(use_case.drift.window_days, use_case.drift.performance_days)
    assert plan.model_version == str(version.version)
    assert plan.days == DAYS[-window:]  # bounded: older days are scored only when a run names them
    assert plan.caught_up == DAYS[-window:-1]
    assert plan.already_scored == []
    assert "catching up on" in plan.describe()


def test_a_run_that_names_no_day_only_catches_up(store: ParquetFeatureStore) -> None:
    promote()
    plan = plan_scoring(get_use_case("churn"), [], DAYS[5], get_lake(), store)
    assert plan.days == plan.caught_up == DAYS[:6]


def test_a_day_scored_with_the_same_champion_and_features_is_not_scored_again(
    store: ParquetFeatureStore,
) -> None:
    lake, use_case = get_lake(), get_use_case("churn")
    version = promote()
    for day in DAYS:
        mark_scored(lake, store, day, version)

    plan = plan_scoring(use_case, [DAYS[-1]], DAYS[-1], lake, store)
    assert (plan.days, plan.caught_up, plan.already_scored) == ([], [], [DAYS[-1]])
    assert "already scored on these features" in plan.describe()


def test_an_event_day_is_scored_again_when_its_features_changed(store: ParquetFeatureStore) -> None:
    lake, use_case = get_lake(), get_use_case("churn")
    version = promote()
    for day in DAYS:
        mark_scored(lake, store, day, version)
    commit(store, DAYS[-1], seed_day=DAYS[0])  # the day was delivered again with other rows

    plan = plan_scoring(use_case, [DAYS[-1]], DAYS[-1], lake, store)
    # Only the named day: the others have predictions, and catch-up never rewrites predictions.
    assert (plan.days, plan.caught_up, plan.already_scored) == ([DAYS[-1]], [], [])


def test_a_new_champion_does_not_rewrite_what_production_said(store: ParquetFeatureStore) -> None:
    """Events that piled up while scoring waited (or a promotion's) name days v1 already scored."""
    lake, use_case = get_lake(), get_use_case("churn")
    version = promote()
    for day in DAYS:
        mark_scored(lake, store, day, version)
    promote("second")
    plan = plan_scoring(use_case, DAYS[-3:], DAYS[-1], lake, store)
    assert (plan.days, plan.already_scored) == ([], DAYS[-3:])


def test_a_named_day_without_features_stays_in_the_plan_to_fail_by_name(store: ParquetFeatureStore) -> None:
    promote()
    later = DAYS[-1] + dt.timedelta(days=30)
    plan = plan_scoring(get_use_case("churn"), [later], later, get_lake(), store)
    assert plan.days == [later] and plan.caught_up == []
