"""The retrain decision after a drift check: may drift start a training run now?

``decide_retrain`` is pure (state in, decision out) and unit-tested; ``decide_and_record`` is the
``decide_retrain`` task of the drift DAG: it reads the guard's state from the lake, decides, and
writes the decision (``reports/<uc>/<day>/retrain_decision.json``) and, when it triggers, the new
state (``state/<uc>/retrain_guard.json``).

The guard prevents storms (a cooldown), loops (one retrain per reference champion) and
pile-ups (no trigger while a training run is running or queued).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import DriftCheckResult, RetrainTrigger

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardDecision:
    trigger: bool
    reason: str


def retrain_guard(
    *,
    drifted: bool,
    active_training_runs: int,
    now: dt.datetime,
    last_trigger: dict[str, Any] | None,
    cooldown_hours: float,
    champion_version: str | None,
) -> GuardDecision:
    """Whether drift may start a retrain: no storms (cooldown), no loops (one per reference), no pile-ups."""
    if not drifted:
        return GuardDecision(False, "no drift: nothing to retrain")
    if active_training_runs > 0:
        return GuardDecision(False, f"a training run is already running or queued ({active_training_runs})")
    if last_trigger:
        at = dt.datetime.fromisoformat(last_trigger["at"])
        until = at + dt.timedelta(hours=cooldown_hours)
        if now < until:
            return GuardDecision(
                False,
                f"cooldown: the last drift-triggered retrain was at {at.isoformat()}, next allowed after {until.isoformat()}",
            )
        if champion_version is not None and str(last_trigger.get("reference_version")) == str(
            champion_version
        ):
            return GuardDecision(
                False,
                f"reference (champion v{champion_version}) already triggered a retrain at {at.isoformat()} and no new champion exists since",
            )
    return GuardDecision(True, f"drift on reference champion v{champion_version}: retraining")


@dataclass(frozen=True)
class RetrainDecision:
    """What the task does: start training with ``trigger`` (None: don't), write ``record`` (None: nothing new)."""

    trigger: RetrainTrigger | None
    record: dict[str, Any] | None
    reason: str


def decide_retrain(
    *,
    result: DriftCheckResult,
    state: RetrainTrigger | None,
    drift_run_id: str,
    active_training_runs: int,
    now: dt.datetime,
    cooldown_hours: float,
) -> RetrainDecision:
    """The decision for one drift check, given the guard's last state."""
    if state is not None and state.get("drift_run_id") == drift_run_id:
        # This drift run already decided to trigger (the task is re-running): same answer, nothing new.
        return RetrainDecision(trigger=state, record=None, reason="this drift run already decided to retrain")
    guard = retrain_guard(
        drifted=result["drifted"],
        active_training_runs=active_training_runs,
        now=now,
        last_trigger=dict(state) if state is not None else None,
        cooldown_hours=cooldown_hours,
        champion_version=result["model_version"],
    )
    record = {
        "trigger": guard.trigger,
        "guard_reason": guard.reason,
        "at": now.isoformat(),
        "day": result["day"],
    }
    if not guard.trigger:
        return RetrainDecision(trigger=None, record=record, reason=guard.reason)
    trigger = RetrainTrigger(
        at=now.isoformat(),
        reference_version=result["model_version"],
        drift_run_id=drift_run_id,
        reason="; ".join(result["reasons"]),
        day=result["day"],
        training_run_id=training_run_id(result["day"], drift_run_id),
    )
    return RetrainDecision(trigger=trigger, record=record, reason=guard.reason)


def training_run_id(day: str, drift_run_id: str) -> str:
    """The id of the training run a drift check triggers: one per checked day and drift run."""
    return f"drift__{day}__{re.sub(r'[^A-Za-z0-9_.-]', '', drift_run_id)}"


def decide_and_record(
    lake: Lake,
    use_case: UseCase,
    result: DriftCheckResult,
    *,
    drift_run_id: str,
    active_training_runs: int,
    now: dt.datetime,
    run_exists: Callable[[str], bool],
) -> RetrainTrigger | None:
    """The ``decide_retrain`` task: decide, record the decision and the guard's state; the trigger or None.

    Claim, then act: the state names the training run the trigger will create. A claim from an
    earlier drift run whose training run never appeared (the trigger failed) is void, so one
    failed trigger cannot block retraining for good. ``run_exists`` asks Airflow about a run id.
    """
    state_rel = layout.retrain_guard_state(use_case.name)
    state: RetrainTrigger | None = lake.read_json(state_rel) if lake.exists(state_rel) else None
    if state is not None and state.get("drift_run_id") != drift_run_id:
        claimed = state.get("training_run_id")
        if not claimed or not run_exists(claimed):
            log.warning(
                "the retrain claimed by %s never started (%s); the claim is void",
                state.get("drift_run_id"),
                claimed,
            )
            state = None
    decision = decide_retrain(
        result=result,
        state=state,
        drift_run_id=drift_run_id,
        active_training_runs=active_training_runs,
        now=now,
        cooldown_hours=use_case.drift.cooldown_hours,
    )
    log.info(
        "retrain guard for %r: trigger=%s - %s", use_case.name, decision.trigger is not None, decision.reason
    )
    if decision.record is not None:
        lake.write_json(layout.retrain_decision(use_case.name, result["day"]), decision.record)
        if decision.trigger is not None:
            lake.write_json(state_rel, decision.trigger)
            faults.point("trigger")
    return decision.trigger
