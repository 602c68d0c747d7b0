"""``model.threshold``: how a classifier's decision threshold is chosen, validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.core.config import ConfigError, DecisionThresholdSpec, UseCase, parse_use_case

ROOT = Path(__file__).resolve().parents[3]


def _parse(stem: str, threshold: Any) -> UseCase:
    raw = yaml.safe_load((ROOT / f"config/use_cases/{stem}.yaml").read_text())
    raw["model"]["threshold"] = threshold
    return parse_use_case(raw, f"{stem}.yaml")


def test_a_classifier_without_a_threshold_section_chooses_for_f1() -> None:
    raw = yaml.safe_load((ROOT / "config/use_cases/churn.yaml").read_text())
    raw["model"].pop("threshold", None)
    use_case = parse_use_case(raw, "churn.yaml")
    assert use_case.model.threshold is None
    assert use_case.decision_threshold == DecisionThresholdSpec(objective="f1")


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        pytest.param({"objective": "f1"}, DecisionThresholdSpec(), id="f1"),
        pytest.param(
            {"objective": "precision_at_recall", "min_recall": 0.6},
            DecisionThresholdSpec(objective="precision_at_recall", min_recall=0.6),
            id="precision-at-recall",
        ),
        pytest.param(
            {"objective": "cost", "cost": {"false_positive": 1, "false_negative": 5}},
            DecisionThresholdSpec.model_validate(
                {"objective": "cost", "cost": {"false_positive": 1, "false_negative": 5}}
            ),
            id="cost",
        ),
    ],
)
def test_a_declared_objective_is_used(threshold: dict[str, Any], expected: DecisionThresholdSpec) -> None:
    assert _parse("churn", threshold).decision_threshold == expected


BAD = [
    pytest.param(
        {"objective": "accuracy"},
        "model.threshold.objective",
        ("'f1'", "'precision_at_recall'"),
        id="unknown",
    ),
    pytest.param(
        {"objective": "precision_at_recall"},
        "model.threshold",
        ("'precision_at_recall' needs 'min_recall'",),
        id="precision-at-recall-without-min-recall",
    ),
    pytest.param(
        {"objective": "precision_at_recall", "min_recall": 1.5},
        "model.threshold.min_recall",
        ("less than or equal to 1",),
        id="min-recall-above-1",
    ),
    pytest.param(
        {"objective": "cost"},
        "model.threshold",
        ("'cost' needs 'cost: {false_positive",),
        id="cost-without-costs",
    ),
    pytest.param(
        {"objective": "cost", "cost": {"false_positive": 1}},
        "model.threshold.cost.false_negative",
        ("Field required",),
        id="cost-without-false-negative",
    ),
    pytest.param(
        {"objective": "cost", "cost": {"false_positive": 0, "false_negative": 2}},
        "model.threshold.cost.false_positive",
        ("greater than 0",),
        id="zero-cost",
    ),
    pytest.param(
        {"objective": "f1", "min_recall": 0.5},
        "model.threshold",
        ("'min_recall' is only for objective 'precision_at_recall'",),
        id="min-recall-with-f1",
    ),
    pytest.param(
        {"objective": "f1", "cost": {"false_positive": 1, "false_negative": 2}},
        "model.threshold",
        ("'cost' is only for objective 'cost'",),
        id="cost-with-f1",
    ),
    pytest.param({"objective": "f1", "beta": 2}, "model.threshold.beta", ("Extra inputs",), id="unknown-key"),
]


@pytest.mark.parametrize(("threshold", "key", "fragments"), BAD)
def test_a_bad_threshold_section_names_the_field(
    threshold: Any, key: str, fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as err:
        _parse("churn", threshold)
    assert err.value.key == key, err.value
    for fragment in fragments:
        assert fragment in err.value.problem, err.value


def test_a_regression_use_case_refuses_a_threshold() -> None:
    with pytest.raises(ConfigError) as err:
        _parse("delivery_time", {"objective": "f1"})
    assert err.value.key == "model.threshold"
    assert "task 'regression'" in err.value.problem and "remove 'threshold'" in err.value.problem


def test_a_regression_use_case_has_no_threshold() -> None:
    raw = yaml.safe_load((ROOT / "config/use_cases/delivery_time.yaml").read_text())
    assert parse_use_case(raw, "delivery_time.yaml").decision_threshold is None


def test_the_predicted_label_column_is_a_reserved_feature_name() -> None:
    from mlops.core.config import RESERVED_FEATURE_NAMES
    from mlops.model.threshold import PREDICTED_LABEL

    assert PREDICTED_LABEL in RESERVED_FEATURE_NAMES
