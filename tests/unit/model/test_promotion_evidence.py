"""The gate's evidence beyond the champion: a trivial baseline to beat, slices, sane outputs."""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops.core.config import (
    ConfigError,
    PromotionSpec,
    SliceSpec,
    ThresholdSpec,
    get_use_case,
    parse_use_case,
)
from mlops.data.features import LABEL, build_features, extract_labels
from mlops.dev.simulator import simulate_batch
from mlops.model.gate import label_range
from mlops.model.promotion import (
    BaselineCheck,
    bootstrap_difference,
    check_outputs,
    decide,
    evaluate_slices,
    slice_values,
)
from mlops.model.training import (
    BASELINE_STRATEGY,
    DECISION_THRESHOLD,
    X_y,
    compute_metrics,
    fit_baseline,
    make_pipeline,
    metric_fn,
    predict_scores,
    roc_auc,
    split,
)

SPEC = PromotionSpec(metric="roc_auc", min_improvement=0.002, bootstrap_samples=200)
RMSE_SPEC = PromotionSpec(metric="rmse", higher_is_better=False, min_improvement=0.05, bootstrap_samples=200)


def _gather(
    spec: PromotionSpec,
    task: str,
    holdout: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    baseline: np.ndarray,
    champion: np.ndarray | None = None,
    *,
    mode: str | None = None,
    label_bounds: tuple[float | None, float | None] | None = None,
):
    """What the gate does between scoring and deciding (gate._decide without MLflow)."""
    sanity = check_outputs(challenger, task, threshold=DECISION_THRESHOLD, label_range=label_bounds)
    if not sanity.scorable:
        return decide(
            {},
            spec,
            comparison=None,
            has_champion=champion is not None,
            sanity=sanity,
            baseline=None,
            mode=mode,
        )
    paired = {
        "metric": metric_fn(spec.metric, task),
        "higher_is_better": spec.higher_is_better,
        "samples": spec.bootstrap_samples,
        "confidence": spec.confidence,
    }
    vs_baseline = bootstrap_difference(y, challenger, baseline, **paired)
    base = BaselineCheck(BASELINE_STRATEGY[task], vs_baseline, spec.baseline_margin)
    comparison = None if champion is None else bootstrap_difference(y, challenger, champion, **paired)
    slices = evaluate_slices(
        holdout, y, spec.slices, challenger=challenger, baseline=baseline, champion=champion, **paired
    )
    return decide(
        compute_metrics(y, challenger, task),
        spec,
        comparison=comparison,
        has_champion=champion is not None,
        sanity=sanity,
        baseline=base,
        slices=slices,
        mode=mode,
    )


# 1. A baseline to beat: a model trained on shuffled labels is refused, also as the first model ----------


@functools.cache
def _simulated(use_case: str, days: int = 6, rows: int = 500) -> dict[str, pd.DataFrame]:
    uc = get_use_case(use_case)
    frames = []
    for i in range(days):
        batch = simulate_batch(use_case, dt.date(2026, 3, 1) + dt.timedelta(days=i), rows=rows)
        frame = build_features(batch, uc)
        frame[LABEL] = extract_labels(batch, uc)[LABEL].to_numpy()
        frames.append(frame)
    return split(pd.concat(frames, ignore_index=True), uc)


# (use case, estimator, hyperparameters): None is the use case's configured model. Not in the list: a
# linear classifier on churn. Its coefficients fitted to noise point in a random direction, scores then
# follow the features' main common component (customer loyalty), and that ranks churners on any holdout
# (roc_auc 0.71 for one permutation): no holdout comparison can tell that model from a weak real one.
MODELS = [
    pytest.param("churn", None, None, id="churn-configured"),
    pytest.param("delivery_time", None, None, id="delivery-configured"),
    pytest.param("delivery_time", "sklearn.linear_model.Ridge", {"alpha": 1.0}, id="delivery-ridge"),
]


@pytest.mark.parametrize(("use_case", "estimator", "hyperparameters"), MODELS)
@pytest.mark.parametrize(
    "permutation",
    [*(pytest.param(seed, id=f"shuffled-{seed}") for seed in range(3)), pytest.param(None, id="true-labels")],
)
def test_a_model_trained_on_shuffled_labels_does_not_beat_the_baseline(
    use_case: str, estimator: str | None, hyperparameters: dict | None, permutation: int | None
) -> None:
    uc = get_use_case(use_case)
    # The shipped margins, no thresholds or slices: only the baseline can refuse.
    spec = uc.promotion.model_copy(update={"thresholds": {}, "slices": []})
    parts = _simulated(use_case)
    X, y = X_y(parts["train"], uc)
    if permutation is not None:
        y = np.random.default_rng(permutation).permutation(y)
    pipe = make_pipeline(uc, hyperparameters, estimator=estimator).fit(X, y)
    X_hold, y_hold = X_y(parts["holdout"], uc)
    challenger = predict_scores(pipe, X_hold, uc.task)
    baseline = predict_scores(fit_baseline(X, y, uc.task), X_hold, uc.task)
    decision = _gather(
        spec, uc.task, parts["holdout"], y_hold, challenger, baseline, label_bounds=label_range(uc)
    )
    assert decision.baseline is not None and decision.baseline.strategy == BASELINE_STRATEGY[uc.task]
    record = decision.as_dict()["baseline"]
    assert record["metric"] == spec.metric and record["margin"] == spec.baseline_margin
    assert record["ci_low"] <= record["improvement"] <= record["ci_high"]
    if permutation is not None:
        assert not decision.baseline.passed and not decision.promote and decision.outcome == "rejected"
        strategy = BASELINE_STRATEGY[uc.task]
        assert f"not clearly better than the {strategy} baseline on {spec.metric}" in decision.reason
    else:
        assert decision.baseline.passed and decision.promote, decision.reason
        assert decision.reason.startswith("first model") and "beats the" in decision.reason


def test_the_prior_baseline_scores_half_on_roc_auc() -> None:
    y = np.array([0, 1, 0, 0, 1, 0, 0, 1] * 10)
    X = pd.DataFrame({"x": np.arange(len(y))})
    scores = predict_scores(fit_baseline(X, y, "classification"), X, "classification")
    assert np.allclose(scores, y.mean()) and roc_auc(y, scores) == 0.5


def test_a_baseline_margin_is_a_floor_above_the_baseline() -> None:
    y, challenger, baseline = _ranked(quality=0.15, n=2000, seed=3)  # roc_auc about 0.58
    holdout = pd.DataFrame({"x": np.zeros(len(y))})
    loose = _gather(SPEC, "classification", holdout, y, challenger, baseline)
    stricter = SPEC.model_copy(update={"baseline_margin": 0.1})
    strict = _gather(stricter, "classification", holdout, y, challenger, baseline)
    assert loose.baseline is not None and 0 < loose.baseline.comparison.ci_low < 0.1
    assert loose.promote and not strict.promote and "<= margin 0.1" in strict.reason


@pytest.mark.parametrize(
    "scores",
    [
        pytest.param(np.linspace(0, 1, 500), id="distinct"),
        pytest.param(np.round(np.linspace(0, 1, 500), 1), id="ties"),
    ],
)
def test_roc_auc_is_scikit_learns(scores: np.ndarray) -> None:
    y = np.random.default_rng(1).integers(0, 2, len(scores)).astype(float)
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    with pytest.raises(ValueError, match="two classes"):
        roc_auc(np.ones(10), scores[:10])


# 2. Slices -----------------------------------------------------------------------------------------------


def _ranked(quality: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, 1 / (1 + np.exp(-(quality * (2 * y - 1) + rng.normal(0, 1, n)))), np.full(n, y.mean())


def _plans(n_per_plan: int = 1000, *, weak_plan: str = "premium", seed: int = 0) -> dict:
    """Three plans; the challenger is much better than the champion on two and worse on ``weak_plan``."""
    rng = np.random.default_rng(seed)
    plans = np.repeat(["basic", "standard", "premium"], n_per_plan)
    y = rng.integers(0, 2, len(plans))
    signal = 2 * y - 1
    champion = signal * 1.0 + rng.normal(0, 1, len(y))
    challenger = signal * 3.0 + rng.normal(0, 1, len(y))
    weak = plans == weak_plan
    challenger[weak] = signal[weak] * 0.3 + rng.normal(0, 1, weak.sum())
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    tenure = rng.integers(0, 72, len(y)).astype(float)
    holdout = pd.DataFrame({"plan": plans, "tenure_months": tenure, LABEL: y})
    return {
        "holdout": holdout,
        "y": y,
        "challenger": sigmoid(challenger),
        "champion": sigmoid(champion),
        "baseline": np.full(len(y), y.mean()),
    }


@pytest.mark.parametrize(
    ("slices", "promoted", "named"),
    [
        pytest.param(
            [SliceSpec(column="plan", blocking=True)],
            False,
            "blocking slice plan=premium",
            id="blocking-refuses",
        ),
        pytest.param(
            [SliceSpec(column="plan")],
            True,
            "non-blocking slice(s) plan=premium (worse than champion)",
            id="non-blocking-reported",
        ),
        pytest.param(
            [SliceSpec(column="plan", blocking=True, min_rows=2000)],
            True,
            "beats champion",
            id="too-few-rows",
        ),
        pytest.param([], True, "beats champion", id="no-slices"),
    ],
)
def test_a_challenger_better_overall_but_worse_on_a_slice(
    slices: list[SliceSpec], promoted: bool, named: str
) -> None:
    data = _plans()
    spec = SPEC.model_copy(update={"slices": slices})
    decision = _gather(
        spec,
        "classification",
        data["holdout"],
        data["y"],
        data["challenger"],
        data["baseline"],
        data["champion"],
    )
    # Better overall, clearly.
    assert decision.comparison is not None and decision.comparison.ci_low > spec.min_improvement
    assert decision.promote == promoted and named in decision.reason, decision.reason
    entries = {e["value"]: e for e in decision.as_dict()["slices"]}
    if slices and slices[0].min_rows <= 1000:
        assert set(entries) == {"basic", "standard", "premium"}
        assert entries["premium"]["status"] == "worse_than_champion"
        assert entries["premium"]["vs_champion"]["ci_high"] < 0
        assert entries["premium"]["blocks"] == slices[0].blocking
        assert entries["basic"]["status"] == "ok" and entries["basic"]["rows"] == 1000
        assert not promoted or "premium" in decision.reason  # a promoted model still shows where it is worse
    elif slices:
        assert {e["status"] for e in entries.values()} == {"too_few_rows"}
        assert not any(e["blocks"] for e in entries.values())


def test_each_slice_gets_a_noise_band_from_its_own_rows() -> None:
    data = _plans(n_per_plan=1000, weak_plan="none")
    holdout = data["holdout"].copy()
    holdout["size"] = np.where(np.arange(len(holdout)) % 20 == 0, "small", "large")
    spec = SPEC.model_copy(update={"slices": [SliceSpec(column="size")]})
    results = evaluate_slices(
        holdout,
        data["y"],
        spec.slices,
        challenger=data["challenger"],
        baseline=data["baseline"],
        champion=data["champion"],
        metric=roc_auc,
        higher_is_better=True,
        samples=200,
        confidence=0.95,
    )
    width = {r.value: r.vs_champion.ci_high - r.vs_champion.ci_low for r in results if r.vs_champion}
    assert {r.value: r.rows for r in results} == {"small": 150, "large": 2850}
    assert width["small"] > 2 * width["large"]


@pytest.mark.parametrize(
    ("declared", "evaluated", "named"),
    [
        pytest.param(
            "tenure_band",
            True,
            "declared slice column 'tenure_band' is not in the holdout",
            id="column-missing-from-holdout",
        ),
        pytest.param(
            "plan", False, "slice 'plan' was declared but not evaluated", id="declared-but-not-evaluated"
        ),
    ],
)
def test_a_declared_slice_that_cannot_be_judged_refuses(declared: str, evaluated: bool, named: str) -> None:
    data = _plans(weak_plan="none")
    spec = SPEC.model_copy(update={"slices": [SliceSpec(column=declared)]})  # not even blocking
    y, challenger, baseline = data["y"], data["challenger"], data["baseline"]
    paired = {"metric": roc_auc, "higher_is_better": True, "samples": 100, "confidence": 0.95}
    slices = (
        evaluate_slices(
            data["holdout"], y, spec.slices, challenger=challenger, baseline=baseline, champion=None, **paired
        )
        if evaluated
        else []
    )
    base = BaselineCheck("prior", bootstrap_difference(y, challenger, baseline, **paired), 0.0)
    sanity = check_outputs(challenger, "classification", threshold=0.5)
    metrics = compute_metrics(y, challenger, "classification")
    decision = decide(
        metrics, spec, comparison=None, has_champion=False, sanity=sanity, baseline=base, slices=slices
    )
    assert not decision.promote and decision.outcome == "rejected"
    assert named in decision.reason


def test_bins_on_a_text_column_refuse_naming_it() -> None:
    data = _plans(weak_plan="none")
    results = evaluate_slices(
        data["holdout"],
        data["y"],
        [SliceSpec(column="plan", bins=[1.0])],
        challenger=data["challenger"],
        baseline=data["baseline"],
        champion=None,
        metric=roc_auc,
        higher_is_better=True,
        samples=50,
        confidence=0.95,
    )
    assert [(r.status, r.blocks) for r in results] == [("not_numeric", True)]
    assert "'plan' has bins" in results[0].note


def test_a_slice_with_one_class_is_reported_undefined_not_blocking() -> None:
    data = _plans(n_per_plan=200, weak_plan="none")
    y = data["y"].copy()
    y[data["holdout"]["plan"].to_numpy() == "basic"] = 0
    results = evaluate_slices(
        data["holdout"],
        y,
        [SliceSpec(column="plan", blocking=True)],
        challenger=data["challenger"],
        baseline=data["baseline"],
        champion=data["champion"],
        metric=roc_auc,
        higher_is_better=True,
        samples=50,
        confidence=0.95,
    )
    by_value = {r.value: r for r in results}
    assert by_value["basic"].status == "undefined" and not by_value["basic"].blocks
    assert by_value["premium"].status != "undefined"


def test_numeric_bins_and_missing_values() -> None:
    values = pd.Series([0.5, 2.0, 4.9, 5.0, 12.0, np.nan])
    expected = ["< 2", "[2, 5)", "[2, 5)", "[5, 10)", ">= 10", "missing"]
    assert slice_values(values, [2, 5, 10]).tolist() == expected
    assert slice_values(pd.Series(["rain", None]), None).tolist() == ["rain", "missing"]


def test_regression_slices_are_judged_with_lower_is_better() -> None:
    rng = np.random.default_rng(5)
    n = 1200
    weather = rng.choice(["clear", "rain", "snow"], n, p=[0.6, 0.3, 0.1])
    y = rng.normal(40, 10, n)
    champion = y + rng.normal(0, 4, n)
    challenger = y + rng.normal(0, 2, n)
    snow = weather == "snow"
    challenger[snow] = y[snow] + rng.normal(0, 6, snow.sum())  # better overall, worse in snow
    spec = RMSE_SPEC.model_copy(update={"slices": [SliceSpec(column="weather", blocking=True)]})
    holdout = pd.DataFrame({"weather": weather})
    baseline = np.full(n, y.mean())
    decision = _gather(spec, "regression", holdout, y, challenger, baseline, champion, label_bounds=(1, 300))
    assert decision.comparison is not None and decision.comparison.improvement > 0
    assert not decision.promote
    assert "blocking slice weather=snow" in decision.reason and "on rmse" in decision.reason


# 3. Sane outputs -----------------------------------------------------------------------------------------


def _probabilities(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(0, 1, n))))


NOT_FINITE = "1 of 400 holdout predictions are NaN or infinite"
OUT_OF_RANGE = "holdout predictions are outside the label's declared range [1, 300]"


def _with_nan(scores: np.ndarray) -> np.ndarray:
    out = scores.astype(float)
    out[3] = np.nan
    return out


def _with_inf(scores: np.ndarray) -> np.ndarray:
    out = scores.astype(float)
    out[-1] = np.inf
    return out


@pytest.mark.parametrize(
    ("task", "transform", "bounds", "problem"),
    [
        pytest.param("classification", lambda s: s, None, None, id="sane-classifier"),
        pytest.param("classification", _with_nan, None, NOT_FINITE, id="nan-scores"),
        pytest.param("regression", _with_inf, (1, 300), NOT_FINITE, id="inf-predictions"),
        pytest.param("classification", lambda s: s * 0.4, None, "predicts class 0 for", id="never-positive"),
        pytest.param("classification", lambda s: 0.6 + s * 0.3, None, "predicts class 1 for", id="always-1"),
        pytest.param("classification", lambda s: s * 0 + 0.5, None, "the same score", id="constant-score"),
        pytest.param("regression", lambda s: 40 + 30 * s, (1, 300), None, id="sane-regression"),
        pytest.param("regression", lambda s: 40 + 30 * s, None, None, id="no-declared-range"),
        pytest.param("regression", lambda s: 40 - 60 * s, (1, 300), OUT_OF_RANGE, id="below-range"),
        pytest.param("regression", lambda s: 200 + 200 * s, (1, 300), OUT_OF_RANGE, id="above-range"),
        pytest.param("regression", lambda s: -5 * s, (None, 300), None, id="only-a-max-declared"),
    ],
)
def test_insane_outputs_are_refused_before_any_comparison(
    task: str, transform, bounds, problem: str | None
) -> None:
    y, probabilities = _probabilities()
    scores = transform(probabilities)
    if task == "regression":
        y = 40 + 30 * y + np.random.default_rng(1).normal(0, 2, len(y))
    sanity = check_outputs(scores, task, threshold=DECISION_THRESHOLD, label_range=bounds)
    if problem is None:
        assert sanity.passed, sanity.problems
        return
    assert not sanity.passed and any(problem in p for p in sanity.problems), sanity.problems
    spec = SPEC if task == "classification" else RMSE_SPEC
    holdout = pd.DataFrame({"x": np.zeros(len(y))})
    baseline = np.full(len(y), y.mean())
    for champion in (None, baseline):  # first model, and against a (weak) champion
        decision = _gather(spec, task, holdout, y, scores, baseline, champion, label_bounds=bounds)
        assert not decision.promote and decision.reason.startswith("outputs: "), decision.reason
        assert problem in decision.reason
        assert decision.as_dict()["sanity"]["passed"] is False


def test_label_range_comes_from_the_declared_target() -> None:
    assert label_range(get_use_case("delivery_time")) == (1.0, 300.0)
    assert label_range(get_use_case("churn")) is None  # a classifier's scores are probabilities


def test_scorable_evidence_is_required() -> None:
    _, scores = _probabilities()
    sanity = check_outputs(scores, "classification", threshold=0.5)
    with pytest.raises(ValueError, match="baseline is required"):
        decide({"roc_auc": 0.9}, SPEC, comparison=None, has_champion=False, sanity=sanity, baseline=None)


# Config -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        pytest.param(
            [{"column": "plan"}, {"column": "plan", "blocking": True}],
            "'plan' is declared twice",
            id="duplicate",
        ),
        pytest.param([{"column": "tenure_months", "bins": [10, 5]}], "strictly increasing", id="unsorted"),
        pytest.param([{"column": "tenure_months", "bins": []}], "at least one cut point", id="empty-bins"),
        pytest.param([{"column": "plan", "min_rows": 1}], "greater than or equal to 2", id="min-rows"),
        pytest.param([{"column": "plan", "blocks": True}], "Extra inputs are not permitted", id="typo"),
    ],
)
def test_slice_declarations_are_validated_on_load(slices: list[dict], message: str) -> None:
    raw = get_use_case("churn").model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["promotion"]["slices"] = slices
    with pytest.raises(ConfigError, match=r"promotion\.slices") as raised:
        parse_use_case(raw, "churn.yaml")
    assert message in str(raised.value)


def test_shipped_use_cases_declare_slices() -> None:
    churn, delivery = get_use_case("churn").promotion, get_use_case("delivery_time").promotion
    assert {(s.column, s.blocking) for s in churn.slices} == {("plan", True), ("region", False)}
    assert ("weather", True) in {(s.column, s.blocking) for s in delivery.slices}
    for use_case in (get_use_case("churn"), get_use_case("delivery_time")):
        # Every declared slice column is in the holdout, which holds the features.
        assert {s.column for s in use_case.promotion.slices} <= set(use_case.feature_names)


def test_a_spec_without_slices_judges_overall_only() -> None:
    spec = PromotionSpec(metric="roc_auc", thresholds={"roc_auc": ThresholdSpec(min=0.7)})
    assert spec.slices == [] and spec.baseline_margin == 0.0
