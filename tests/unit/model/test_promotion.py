from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlops.core.config import PROMOTION_MODES, PromotionModeRefused, PromotionSpec, ThresholdSpec
from mlops.model.promotion import (
    BaselineCheck,
    Comparison,
    Sanity,
    bootstrap_difference,
    check_thresholds,
    decide,
)

SPEC = PromotionSpec(
    metric="roc_auc",
    thresholds={"roc_auc": ThresholdSpec(min=0.7), "log_loss": ThresholdSpec(max=0.6)},
    min_improvement=0.002,
    bootstrap_samples=300,
)
GOOD = {"roc_auc": 0.85, "log_loss": 0.3}
# Evidence of a challenger with sane outputs that clearly beats the trivial baseline: these tests
# are about thresholds, the champion comparison and modes (test_promotion_evidence.py: the rest).
EVIDENCE = {
    "sanity": Sanity(
        3000, non_finite=0, score_min=0.01, score_max=0.99, problems=[], predicted_classes=[0, 1]
    ),
    "baseline": BaselineCheck("prior", Comparison("roc_auc", 0.85, 0.5, 0.35, 0.33, 0.37, 300, 0.95), 0.0),
}


def _scores(quality: float, seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    noise = rng.normal(0, 1, n)
    return y, quality * y + noise


def _compare(challenger_quality: float, champion_quality: float, *, same: bool = False) -> Comparison:
    y, champion = _scores(champion_quality, 1)
    rng = np.random.default_rng(2)
    challenger = champion.copy() if same else challenger_quality * y + rng.normal(0, 1, len(y))
    return bootstrap_difference(
        y, challenger, champion, roc_auc_score, higher_is_better=True, samples=300, confidence=0.95
    )


def test_clearly_better_challenger_is_promoted() -> None:
    comparison = _compare(2.0, 1.0)
    assert comparison.ci_low > 0.002
    decision = decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE)
    assert decision.promote and decision.apply and decision.outcome == "promoted"
    assert "beats champion" in decision.reason


def test_worse_challenger_is_rejected() -> None:
    comparison = _compare(0.5, 1.0)
    assert comparison.improvement < 0
    decision = decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE)
    assert not decision.promote and decision.outcome == "rejected"
    assert decision.reason.startswith("worse than champion")


def test_equal_within_noise_is_rejected() -> None:
    comparison = _compare(1.0, 1.0, same=True)
    assert comparison.improvement == 0
    decision = decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE)
    assert not decision.promote
    assert "not clearly better" in decision.reason


def test_tiny_gain_below_margin_is_rejected() -> None:
    comparison = Comparison("roc_auc", 0.851, 0.850, 0.001, 0.0005, 0.0015, 300, 0.95)
    assert not decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE).promote


def test_first_model_is_promoted_when_it_passes_thresholds() -> None:
    decision = decide(GOOD, SPEC, comparison=None, has_champion=False, **EVIDENCE)
    assert decision.promote and "first model" in decision.reason


@pytest.mark.parametrize(
    "metrics, failure",
    [
        pytest.param({"roc_auc": 0.65, "log_loss": 0.3}, "roc_auc 0.6500 < minimum 0.7", id="auc-too-low"),
        pytest.param({"roc_auc": 0.9, "log_loss": 0.7}, "log_loss 0.7000 > maximum 0.6", id="loss-too-high"),
        pytest.param({"log_loss": 0.3}, "roc_auc was not computed", id="metric-missing"),
    ],
)
def test_threshold_failure_blocks_even_a_first_model(metrics: dict, failure: str) -> None:
    assert failure in check_thresholds(metrics, SPEC)
    decision = decide(metrics, SPEC, comparison=None, has_champion=False, **EVIDENCE)
    assert not decision.promote and failure in decision.reason


def test_dry_run_decides_but_changes_nothing() -> None:
    comparison = _compare(2.0, 1.0)
    decision = decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE, mode="dry_run")
    assert decision.promote and not decision.apply
    assert decision.outcome == "dry_run_promote" and decision.reason.startswith("dry run")


def test_disabled_never_promotes() -> None:
    decision = decide(GOOD, SPEC, comparison=None, has_champion=False, **EVIDENCE, mode="disabled")
    assert not decision.promote and not decision.apply


def test_champion_without_comparison_is_an_error() -> None:
    with pytest.raises(ValueError, match="comparison"):
        decide(GOOD, SPEC, comparison=None, has_champion=True, **EVIDENCE)


def test_lower_is_better_metric_sign() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, 2000)
    good = y + rng.normal(0, 1, 2000)
    bad = y + rng.normal(0, 5, 2000)
    rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    comparison = bootstrap_difference(
        y, good, bad, rmse, higher_is_better=False, samples=200, confidence=0.95
    )
    assert comparison.improvement > 0 and comparison.ci_low > 0


def test_approval_mode_waits_instead_of_promoting() -> None:
    comparison = Comparison("roc_auc", 0.90, 0.85, 0.05, 0.03, 0.07, 300, 0.95)
    decision = decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE, mode="approval")
    assert decision.outcome == "awaiting_approval" and decision.promote and not decision.apply
    assert decision.reason.startswith("awaiting approval: beats champion")


def test_approval_mode_rejects_a_loser_without_asking() -> None:
    comparison = Comparison("roc_auc", 0.84, 0.85, -0.01, -0.03, 0.01, 300, 0.95)
    decision = decide(GOOD, SPEC, comparison=comparison, has_champion=True, **EVIDENCE, mode="approval")
    assert decision.outcome == "rejected" and decision.apply and not decision.promote


# The configured mode is a floor: every (configured, requested) pair -------------------------------

# What a passing challenger's decision is in each mode (no champion yet: it passes the thresholds).
OUTCOME_IN_MODE = {
    "auto": "promoted",
    "approval": "awaiting_approval",
    "dry_run": "dry_run_promote",
    "disabled": "disabled",
}
MODES = list(PROMOTION_MODES)


@pytest.mark.parametrize(
    ("configured", "requested"),
    [pytest.param(c, r, id=f"{c}-asks-{r or 'nothing'}") for c in MODES for r in [None, *MODES]],
)
def test_a_run_may_make_promotion_stricter_never_looser(configured: str, requested: str | None) -> None:
    spec = SPEC.model_copy(update={"mode": configured})
    looser = requested is not None and MODES.index(requested) < MODES.index(configured)
    if looser:
        with pytest.raises(
            PromotionModeRefused, match=f"{requested!r} is looser than the use case's {configured!r}"
        ):
            decide(GOOD, spec, comparison=None, has_champion=False, **EVIDENCE, mode=requested)
        assert requested not in spec.allowed_modes()  # the form does not offer it either
        return
    decision = decide(GOOD, spec, comparison=None, has_champion=False, **EVIDENCE, mode=requested)
    assert decision.outcome == OUTCOME_IN_MODE[requested or configured]
    assert decision.apply == ((requested or configured) == "auto")
    assert spec.run_mode(requested) in spec.allowed_modes()


def test_an_unknown_mode_is_refused_naming_the_allowed_ones() -> None:
    spec = SPEC.model_copy(update={"mode": "approval"})
    with pytest.raises(
        PromotionModeRefused, match="unknown promotion mode 'yolo'; one of approval, dry_run, disabled"
    ):
        spec.run_mode("yolo")


# Judged on now: a challenger older than the champion ---------------------------------------------


@pytest.mark.parametrize(
    ("challenger_end", "accepted", "refused"),
    [
        pytest.param("2026-11-29", False, True, id="window-ends-before-the-champions"),
        pytest.param("2026-11-29", True, False, id="a-person-asked-to-judge-it"),
        pytest.param("2026-12-06", False, False, id="same-window-end"),
        pytest.param("2026-12-07", False, False, id="newer"),
    ],
)
def test_a_challenger_trained_before_the_champion_is_refused(
    challenger_end: str, accepted: bool, refused: bool
) -> None:
    import datetime as dt

    from mlops.model.promotion import staleness

    why = staleness(dt.date.fromisoformat(challenger_end), dt.date(2026, 12, 6), "2", accepted=accepted)
    assert (why is not None) == refused
    if refused:
        assert (
            why is not None
            and "stale challenger: its data window ends 2026-11-29, before champion v2's" in why
        )
        decision = decide(GOOD, SPEC, comparison=_compare(2.0, 1.0), has_champion=True, stale=why, **EVIDENCE)
        assert not decision.promote and "stale challenger" in decision.reason
