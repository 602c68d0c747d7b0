"""The decision threshold: chosen on validation rows for the declared objective, read back from a version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mlops.core.config import DecisionThresholdSpec, get_use_case
from mlops.model import tags
from mlops.model.promotion import gather_evidence
from mlops.model.threshold import NoThreshold, choose_for, choose_threshold, describe, labels, threshold_of


def _validation(seed: int = 3, rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A rare positive class whose scores sit mostly below 0.5: a model that 0.5 would make timid."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=rows) < 0.15).astype(int)
    scores = np.clip(rng.normal(0.12 + 0.22 * y, 0.1), 0, 1)
    return y, scores


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Every threshold that labels the rows differently: each distinct score, and one above them all."""
    return np.append(np.unique(scores), np.inf)


def _cost(y: np.ndarray, predicted: np.ndarray, fp: float, fn: float) -> float:
    return float(fp * ((predicted == 1) & (y == 0)).sum() + fn * ((predicted == 0) & (y == 1)).sum())


def test_the_threshold_maximises_f1_on_the_validation_rows() -> None:
    y, scores = _validation()
    chosen = choose_threshold(y, scores, DecisionThresholdSpec())
    best = max(f1_score(y, labels(scores, t)) for t in _candidates(scores))
    assert chosen.objective == "f1"
    assert f1_score(y, labels(scores, chosen.value)) == pytest.approx(best)
    assert chosen.f1 == pytest.approx(best)
    # The timid default finds fewer of the positives than the chosen threshold does.
    assert chosen.value < 0.5
    assert chosen.recall > recall_score(y, labels(scores, 0.5))
    assert chosen.precision == pytest.approx(precision_score(y, labels(scores, chosen.value)))


@pytest.mark.parametrize("min_recall", [0.5, 0.8, 0.95, 1.0])
def test_precision_at_recall_keeps_the_recall_and_is_the_most_precise(min_recall: float) -> None:
    y, scores = _validation()
    spec = DecisionThresholdSpec(objective="precision_at_recall", min_recall=min_recall)
    chosen = choose_threshold(y, scores, spec)
    predicted = labels(scores, chosen.value)
    assert recall_score(y, predicted) >= min_recall
    allowed = [t for t in _candidates(scores) if recall_score(y, labels(scores, t)) >= min_recall]
    best = max(precision_score(y, labels(scores, t), zero_division=0) for t in allowed)
    assert precision_score(y, predicted) == pytest.approx(best)


@pytest.mark.parametrize(("fp", "fn"), [(1.0, 10.0), (10.0, 1.0), (1.0, 1.0)])
def test_the_cost_objective_picks_the_cheapest_threshold(fp: float, fn: float) -> None:
    y, scores = _validation()
    spec = DecisionThresholdSpec.model_validate(
        {"objective": "cost", "cost": {"false_positive": fp, "false_negative": fn}}
    )
    chosen = choose_threshold(y, scores, spec)
    cheapest = min(_cost(y, labels(scores, t), fp, fn) for t in _candidates(scores))
    assert chosen.cost == pytest.approx(cheapest)
    assert _cost(y, labels(scores, chosen.value), fp, fn) == pytest.approx(cheapest)


def test_a_dearer_miss_lowers_the_threshold() -> None:
    y, scores = _validation()

    def at(fp: float, fn: float) -> float:
        spec = DecisionThresholdSpec.model_validate(
            {"objective": "cost", "cost": {"false_positive": fp, "false_negative": fn}}
        )
        return choose_threshold(y, scores, spec).value

    assert at(1, 20) < at(1, 1) < at(20, 1)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param([0.2, 0.3, 0.8, 0.9], 0.5, id="0.5-separates-best"),
        pytest.param([0.6, 0.7, 0.8, 0.9], 0.75, id="the-midpoint-nearest-0.5"),
        pytest.param([0.1, 0.2, 0.3, 0.4], 0.25, id="below-0.5-too"),
    ],
)
def test_ties_go_to_the_threshold_nearest_one_half(scores: list[float], expected: float) -> None:
    # Two negatives then two positives: every threshold between the second and the third score is perfect.
    chosen = choose_threshold([0, 0, 1, 1], scores, DecisionThresholdSpec())
    assert chosen.value == pytest.approx(expected)
    assert (chosen.precision, chosen.recall, chosen.f1) == (1.0, 1.0, 1.0)


def test_validation_without_a_positive_row_chooses_nothing() -> None:
    use_case = get_use_case("churn")
    with pytest.raises(NoThreshold, match="use case 'churn': the validation split has no positive row"):
        choose_for(use_case, np.zeros(20, dtype=int), np.linspace(0, 1, 20))


def test_a_regression_has_no_threshold() -> None:
    assert choose_for(get_use_case("delivery_time"), np.zeros(3), np.ones(3)) is None


@dataclass
class Version:
    version: str = "3"
    tags: dict[str, str] = field(default_factory=dict)


def test_the_threshold_is_read_back_from_the_version_tags() -> None:
    y, scores = _validation()
    chosen = choose_threshold(y, scores, DecisionThresholdSpec())
    version = Version(tags=chosen.as_tags())
    assert threshold_of(version) == chosen.value  # exactly: stored without rounding
    shown = describe(version, y, scores)
    assert shown["value"] == chosen.value and shown["objective"] == "f1"
    assert shown["recall"] == pytest.approx(chosen.recall)


def test_a_version_without_a_threshold_keeps_one_half() -> None:
    assert threshold_of(Version()) == 0.5
    assert threshold_of(type("Entry", (), {"version": "1"})()) == 0.5  # no tags at all
    assert describe(Version(), [0, 1], [0.2, 0.7])["objective"] is None


@pytest.mark.parametrize("raw", ["high", "1.5", "-0.1", "nan"])
def test_a_bad_threshold_tag_is_refused_not_guessed(raw: str) -> None:
    with pytest.raises(ValueError, match=f"v3 has {tags.DECISION_THRESHOLD}='{raw}'"):
        threshold_of(Version(tags={tags.DECISION_THRESHOLD: raw}))


def test_a_label_metric_compares_each_model_at_its_own_threshold() -> None:
    base = get_use_case("churn")
    use_case = base.model_copy(
        update={
            "promotion": base.promotion.model_copy(
                update={"metric": "f1", "slices": [], "bootstrap_samples": 50}
            )
        }
    )
    y, scores = _validation()
    holdout: Any = None  # no slices: the holdout's columns are not read
    baseline = np.full(len(y), y.mean())
    at_half = gather_evidence(use_case, holdout, y, (scores, baseline, scores))
    cut = choose_threshold(y, scores, DecisionThresholdSpec()).value
    at_own = gather_evidence(use_case, holdout, y, (scores, baseline, scores), thresholds=(cut, 0.5))
    assert at_half.comparison is not None and at_own.comparison is not None
    assert at_half.comparison.improvement == 0.0  # the same model against itself
    assert at_own.comparison.challenger == pytest.approx(f1_score(y, labels(scores, cut)))
    assert at_own.comparison.champion == pytest.approx(f1_score(y, labels(scores, 0.5)))
    assert at_own.comparison.improvement > 0
