from __future__ import annotations

import datetime as dt

import pytest

from mlops.monitoring.drift import retrain_guard

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
    args = {"drifted": True, "active_training_runs": 0, "now": NOW, "last_trigger": None, "cooldown_hours": 24, "champion_version": "3"} | kwargs
    decision = retrain_guard(**args)
    assert decision.trigger is trigger
    assert reason in decision.reason
