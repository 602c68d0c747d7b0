from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.core.results import DriftCheckResult, RetrainTrigger
from mlops.monitoring.retrain import decide_and_record, decide_retrain, retrain_guard

NOW = dt.datetime(2026, 2, 1, 12, tzinfo=dt.UTC)


def _last(hours_ago: float, version: str = "3") -> dict:
    return {"at": (NOW - dt.timedelta(hours=hours_ago)).isoformat(), "reference_version": version}


@pytest.mark.parametrize(
    "kwargs, trigger, reason",
    [
        pytest.param({"drifted": False}, False, "no drift", id="no-drift"),
        pytest.param({}, True, "retraining", id="first-drift"),
        pytest.param({"active_training_runs": 1}, False, "already running or queued", id="training-active"),
        pytest.param({"last_trigger": _last(3)}, False, "cooldown", id="inside-cooldown"),
        pytest.param({"last_trigger": _last(30)}, False, "no new champion", id="same-reference"),
        pytest.param({"last_trigger": _last(30, version="2")}, True, "retraining", id="new-champion-since"),
    ],
)
def test_retrain_guard(kwargs: dict, trigger: bool, reason: str) -> None:
    args = {
        "drifted": True,
        "active_training_runs": 0,
        "now": NOW,
        "last_trigger": None,
        "cooldown_hours": 24,
        "champion_version": "3",
    } | kwargs
    decision = retrain_guard(**args)
    assert decision.trigger is trigger
    assert reason in decision.reason


def _result(drifted: bool = True, version: str = "3") -> DriftCheckResult:
    return DriftCheckResult(
        day="2026-02-01",
        model_version=version,
        drift_share=0.6,
        dataset_drift=drifted,
        drifted=drifted,
        reasons=["dataset drift: 60% of features drifted", "prediction drift"] if drifted else [],
        top_features=[("tenure", 0.4)],
        report_uri="file:///lake/reports/x.html",
        summary_uri="file:///lake/reports/x.json",
        mlflow_run_id="r1",
        alert="queued" if drifted else "no drift",
    )


def _decide(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "result": _result(),
        "state": None,
        "drift_run_id": "scheduled__2026-02-01",
        "active_training_runs": 0,
        "now": NOW,
        "cooldown_hours": 24,
    } | overrides
    return decide_retrain(**args)


def test_drift_triggers_with_the_reasons_and_the_day() -> None:
    decision = _decide()
    assert decision.trigger == RetrainTrigger(
        at=NOW.isoformat(),
        reference_version="3",
        drift_run_id="scheduled__2026-02-01",
        reason="dataset drift: 60% of features drifted; prediction drift",
        day="2026-02-01",
        training_run_id="drift__2026-02-01__scheduled__2026-02-01",
    )
    assert decision.record == {
        "trigger": True,
        "guard_reason": decision.reason,
        "at": NOW.isoformat(),
        "day": "2026-02-01",
    }


def test_no_drift_records_a_decision_without_trigger() -> None:
    decision = _decide(result=_result(drifted=False))
    assert decision.trigger is None
    assert decision.record is not None and decision.record["trigger"] is False
    assert "no drift" in decision.record["guard_reason"]


def test_a_rerun_of_the_same_drift_run_gives_the_same_trigger_and_records_nothing() -> None:
    first = _decide()
    again = _decide(state=first.trigger, now=NOW + dt.timedelta(minutes=5))
    assert again.trigger == first.trigger
    assert again.record is None


def test_another_drift_run_inside_the_cooldown_does_not_trigger() -> None:
    first = _decide()
    later = _decide(
        state=first.trigger, drift_run_id="scheduled__2026-02-02", now=NOW + dt.timedelta(hours=2)
    )
    assert later.trigger is None
    assert later.record is not None and "cooldown" in later.record["guard_reason"]


def test_decide_and_record_writes_the_decision_and_the_state(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    use_case = get_use_case("churn")
    started: set[str] = set()
    trigger = decide_and_record(
        lake,
        use_case,
        _result(),
        drift_run_id="run-1",
        active_training_runs=0,
        now=NOW,
        run_exists=started.__contains__,
    )
    assert trigger is not None
    assert lake.read_json(layout.retrain_guard_state("churn")) == trigger
    assert lake.read_json(layout.retrain_decision("churn", "2026-02-01"))["trigger"] is True
    started.add(trigger["training_run_id"])  # the trigger created the training run

    # The next day, same champion, after the cooldown: no second retrain, and the state is kept.
    next_day = _result() | {"day": "2026-02-02"}
    again = decide_and_record(
        lake,
        use_case,
        DriftCheckResult(**next_day),
        drift_run_id="run-2",
        active_training_runs=0,
        now=NOW + dt.timedelta(hours=30),
        run_exists=started.__contains__,
    )
    assert again is None
    assert lake.read_json(layout.retrain_guard_state("churn")) == trigger
    assert "no new champion" in lake.read_json(layout.retrain_decision("churn", "2026-02-02"))["guard_reason"]


def test_a_claim_whose_training_run_never_started_is_void(tmp_path: Path) -> None:
    """Claim, then act: a trigger that failed after the claim does not block retraining for good."""
    lake = Lake(f"file://{tmp_path}")
    use_case = get_use_case("churn")
    nothing_started: set[str] = set()
    first = decide_and_record(
        lake,
        use_case,
        _result(),
        drift_run_id="run-1",
        active_training_runs=0,
        now=NOW,
        run_exists=nothing_started.__contains__,
    )
    assert first is not None
    # The trigger task failed: no training run exists. The next day's check may trigger again.
    later = NOW + dt.timedelta(hours=30)
    second = decide_and_record(
        lake,
        use_case,
        DriftCheckResult(**(_result() | {"day": "2026-02-02"})),
        drift_run_id="run-2",
        active_training_runs=0,
        now=later,
        run_exists=nothing_started.__contains__,
    )
    assert second is not None and second["drift_run_id"] == "run-2"
    assert lake.read_json(layout.retrain_guard_state("churn"))["training_run_id"] == second["training_run_id"]
