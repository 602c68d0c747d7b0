"""A new use case is green from its first run: the tasks of the real DAG files, called as Airflow
calls them, skip when there is nothing to do yet, know their day when none is given, and refuse a
day that is not a date at once."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from mlops.core.lake import get_lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.orchestration import dag_support
from tests.unit.model.test_scoring_plan import commit, mark_scored, promote

ROOT = Path(__file__).resolve().parents[3]
NO_CHAMPION = "no champion yet: train one from the training DAG (churn_training)"


def dag_of(kind: str, use_case: str = "churn") -> Any:
    """The ``<use case>_<kind>`` DAG built by its file in dags/."""
    spec = importlib.util.spec_from_file_location(f"dag_file_{kind}", ROOT / "dags" / f"{kind}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"{use_case}_{kind}")


def call(dag: Any, task_id: str, params: dict[str, Any], **context: Any) -> Any:
    """Run one task's callable with a context as Airflow gives it: the DAG's params with their
    defaults, overridden by ``params``; a run with no logical date unless ``context`` sets one."""
    from types import SimpleNamespace

    resolved = {key: dag.params[key] for key in dag.params} | params
    full = {
        "params": resolved,
        "run_id": "manual__first",
        "dag": dag,
        "dag_run": SimpleNamespace(
            run_id="manual__first", run_type="manual", conf={}, triggering_user_name=None
        ),
        "triggering_asset_events": {},
        "data_interval_start": None,
        "logical_date": None,
    } | context
    return dag.get_task(task_id).python_callable(**full)


@pytest.mark.parametrize(
    "kind, task_id, params",
    [
        pytest.param("scoring", "partitions_to_score", {"interval": "2026-05-01"}, id="scoring"),
        pytest.param("drift", "check_drift", {"interval": "2026-05-01"}, id="drift"),
    ],
)
def test_before_the_first_champion_scoring_and_drift_skip_with_the_reason(
    fresh_home: Path, kind: str, task_id: str, params: dict
) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException) as raised:
        call(dag_of(kind), task_id, params)
    assert str(raised.value).startswith(NO_CHAMPION)
    assert get_lake().list("predictions/churn") == [] and get_lake().list("reports/churn") == []


def test_a_features_event_for_a_day_already_scored_by_the_champion_scores_nothing(fresh_home: Path) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException

    lake, store = get_lake(), ParquetFeatureStore(get_lake())
    day = dt.date(2026, 5, 1)
    commit(store, day)
    mark_scored(lake, store, day, promote())
    event = {"churn_features": [SimpleNamespace(extra={"interval": day.isoformat()})]}
    with pytest.raises(AirflowSkipException, match=r"nothing to score: .*already scored on these features"):
        call(dag_of("scoring"), "partitions_to_score", {}, triggering_asset_events=event)


def test_a_champion_event_catches_up_on_the_days_skipped_before_it(fresh_home: Path) -> None:
    """The first promotion's champion event names no day: the run scores what was never scored,
    up to the latest closed day."""
    from types import SimpleNamespace

    store = ParquetFeatureStore(get_lake())
    yesterday = dag_support.latest_closed_day()
    skipped = [yesterday - dt.timedelta(days=i) for i in (2, 1, 0)]
    for day in skipped:
        commit(store, day)
    promote()
    event = {"churn_champion": [SimpleNamespace(extra={"version": "1", "outcome": "promoted"})]}
    days = call(dag_of("scoring"), "partitions_to_score", {}, triggering_asset_events=event)
    assert days == [day.isoformat() for day in skipped]


def test_a_training_run_with_no_interval_and_no_logical_date_trains_on_yesterday(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.model import training_set

    asked: list[dt.date] = []

    def prepare(use_case: Any, day: dt.date, *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(day)  # stands in for the training set: this test is about the day it is asked for
        return {"interval": day.isoformat()}

    monkeypatch.setattr(training_set, "prepare_training_set", prepare)
    before = dag_support.latest_closed_day()
    result = call(dag_of("training"), "prepare_training_set", {"interval": None})
    assert asked[0] in {before, dag_support.latest_closed_day()}
    assert result["interval"] == asked[0].isoformat()


@pytest.mark.parametrize(
    "kind, task_id, params",
    [
        pytest.param("training", "prepare_training_set", {"interval": "2026-02-30"}, id="training"),
        pytest.param("scoring", "partitions_to_score", {"intervals": ["last week"]}, id="scoring"),
        pytest.param("drift", "check_drift", {"interval": "05/01/2026"}, id="drift"),
        pytest.param("labels", "extract_labels", {"interval": "tomorrow"}, id="labels"),
    ],
)
def test_a_day_that_is_not_a_date_fails_the_first_task_at_once_without_retry(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch, kind: str, task_id: str, params: dict
) -> None:
    """What reaches a task past the params' own check (they refuse it when the run is created)."""
    from airflow.sdk.exceptions import AirflowFailException

    from tests.unit.core.test_config_labels import label_feed_config
    from tests.unit.data.test_label_days import config_of

    if kind == "labels":  # the shipped use cases have no label feed
        monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config_of(fresh_home, label_feed_config())))
    with pytest.raises(AirflowFailException, match="is not a date"):
        call(dag_of(kind), task_id, params)
