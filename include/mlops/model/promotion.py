"""The promotion gate as data and pure functions (no MLflow here).

How a challenger is judged, in order (the reason lists every check that fails):

1. ``disabled`` mode: nothing is promoted.
2. Sane outputs (:func:`check_outputs`): holdout predictions that are NaN or infinite, a
   classifier that predicts one class only at its decision threshold (or gives every row the same
   score), or a regression outside the label's declared range refuse the challenger.
3. Absolute thresholds from the config (e.g. ``roc_auc >= 0.70``): failing any one rejects it.
4. The trivial baseline (class prior / training mean, fitted on the same training split): the
   challenger must beat it on the gate's metric with the paired bootstrap below, lower bound above
   ``baseline_margin``. Also for the first model: a model trained on noise is never promoted.
5. Champion vs challenger on the **same, latest holdout**: a paired bootstrap (resampling the
   holdout rows, scoring both models on each resample) gives the distribution of the metric
   difference, signed so that positive means the challenger is better. The challenger is
   promoted only if the lower end of the one-sided ``confidence`` interval of that difference is
   above ``min_improvement``. A tie within noise, or a worse challenger, is never promoted.
   No champion yet: a challenger that passes 2-4 is promoted.
6. Slices (``promotion.slices``): the same comparisons on each slice's own rows, so each slice
   gets a noise band from its own sample size. A blocking slice where the challenger is worse than
   the champion or the baseline beyond that band (upper bound of the difference < 0) refuses, as
   does a declared slice column the holdout lacks; a slice value with fewer than ``min_rows`` rows
   is reported as too small to judge. Non-blocking slices are only reported.
7. ``dry_run`` mode records the decision and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.core.config import PromotionSpec, SliceSpec, UseCase
    from mlops.core.results import Outcome


@dataclass(frozen=True)
class Comparison:
    metric: str
    challenger: float
    champion: float  # the reference: the champion, or the baseline in a baseline check
    improvement: float  # signed: > 0 means the challenger is better
    ci_low: float
    ci_high: float
    samples: int
    confidence: float


APPROVE, REJECT = "Approve", "Reject"  # the options of a human approval request


@dataclass(frozen=True)
class Sanity:
    """What the challenger predicted on the holdout, and what is wrong with it (empty: sane)."""

    rows: int
    non_finite: int  # NaN or infinite predictions
    score_min: float | None
    score_max: float | None
    problems: list[str]
    predicted_classes: list[int] | None = None  # classification: the labels predicted at the threshold
    threshold: float | None = None
    label_range: tuple[float | None, float | None] | None = None  # regression: the label's declared range
    out_of_range: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def scorable(self) -> bool:
        """Whether metrics can be computed on these predictions at all."""
        return self.rows > 0 and self.non_finite == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


@dataclass(frozen=True)
class BaselineCheck:
    """The challenger against the trivial baseline on the holdout.

    ``comparison.champion`` holds the baseline's metric (the reference of the paired bootstrap).
    """

    strategy: str  # scikit-learn's DummyClassifier / DummyRegressor strategy
    comparison: Comparison
    margin: float

    @property
    def passed(self) -> bool:
        return self.comparison.ci_low > self.margin

    def as_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "strategy": self.strategy,
            "metric": c.metric,
            "value": c.champion,
            "challenger": c.challenger,
            "improvement": c.improvement,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "samples": c.samples,
            "confidence": c.confidence,
            "margin": self.margin,
            "passed": self.passed,
        }


SliceStatus = Literal[
    "ok",  # judged: not worse than the champion or the baseline beyond the slice's interval
    "worse_than_champion",  # the upper bound of challenger - champion on the slice's rows is < 0
    "worse_than_baseline",  # the upper bound of challenger - baseline on the slice's rows is < 0
    "too_few_rows",  # fewer than the slice's min_rows: reported, never blocks
    "undefined",  # the metric is undefined on these rows (e.g. one class only for roc_auc): reported
    "missing_column",  # the declared column is not in the holdout: refuses
    "not_numeric",  # bins declared on a column that is not numeric: refuses
]
# Statuses that refuse the promotion on a blocking slice, and those that refuse on any slice.
WORSE: Final[tuple[SliceStatus, ...]] = ("worse_than_champion", "worse_than_baseline")
UNJUDGEABLE: Final[tuple[SliceStatus, ...]] = ("missing_column", "not_numeric")
MISSING = "missing"  # the slice value of rows whose column is empty


@dataclass(frozen=True)
class SliceResult:
    """One value of one declared slice: its rows, each model's metric and the paired intervals."""

    column: str
    value: str | None  # None: the column itself could not be sliced (see status)
    rows: int
    blocking: bool
    status: SliceStatus
    challenger: float | None = None
    champion: float | None = None
    baseline: float | None = None
    vs_champion: Comparison | None = None
    vs_baseline: Comparison | None = None
    note: str = ""

    @property
    def blocks(self) -> bool:
        return self.status in UNJUDGEABLE or (self.blocking and self.status in WORSE)

    @property
    def label(self) -> str:
        return f"{self.column}={self.value}" if self.value is not None else self.column

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"blocks": self.blocks}


@dataclass(frozen=True)
class Decision:
    promote: bool  # the gate's verdict
    apply: bool  # whether aliases change (False in dry_run / disabled)
    outcome: Outcome  # one of the gate's: promoted, rejected, awaiting_approval, dry_run_*, disabled
    reason: str
    threshold_failures: list[str]
    comparison: Comparison | None
    # Every check that failed, in the order the gate runs them (the reason joins them).
    failures: list[str] = field(default_factory=list)
    sanity: Sanity | None = None
    baseline: BaselineCheck | None = None
    slices: list[SliceResult] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sanity"] = self.sanity.as_dict() if self.sanity else None
        out["baseline"] = self.baseline.as_dict() if self.baseline else None
        out["slices"] = [s.as_dict() for s in self.slices] if self.slices is not None else None
        return out


def bootstrap_difference(
    y_true: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray,
    metric: Any,
    *,
    higher_is_better: bool,
    samples: int,
    confidence: float,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap of metric(challenger) - metric(champion) on the same rows."""
    import numpy as np

    y = np.asarray(y_true)
    a = np.asarray(challenger_scores)
    b = np.asarray(champion_scores)
    if not (len(y) == len(a) == len(b)) or len(y) == 0:
        raise ValueError("bootstrap needs equal, non-empty arrays of labels and both models' scores")
    sign = 1.0 if higher_is_better else -1.0
    point_a, point_b = float(metric(y, a)), float(metric(y, b))
    rng = np.random.default_rng(seed)
    diffs = []
    n = len(y)
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        yi = y[idx]
        if len(np.unique(yi)) < 2 and len(np.unique(y)) == 2:
            continue  # a resample with one class has no AUC; skip it
        diffs.append(sign * (metric(yi, a[idx]) - metric(yi, b[idx])))
    if not diffs:
        raise ValueError("every bootstrap resample was degenerate; the holdout is too small")
    arr = np.asarray(diffs)
    alpha = 1.0 - confidence
    return Comparison(
        metric=getattr(metric, "__name__", "metric"),
        challenger=point_a,
        champion=point_b,
        improvement=sign * (point_a - point_b),
        ci_low=float(np.quantile(arr, alpha)),
        ci_high=float(np.quantile(arr, 1 - alpha)),
        samples=len(arr),
        confidence=confidence,
    )


def check_outputs(
    scores: np.ndarray,
    task: str,
    *,
    threshold: float,
    label_range: tuple[float | None, float | None] | None = None,
) -> Sanity:
    """Are the challenger's holdout predictions usable at all? Runs before any comparison.

    Classification (``scores`` are P(positive)): every row predicted the same label at
    ``threshold``, or the same score, is a model that decides nothing. Regression: predictions
    outside ``label_range`` (the target's declared min/max) are values the label can never take.
    NaN or infinite predictions are refused for both.
    """
    import numpy as np

    values = np.asarray(scores, dtype="float64").ravel()
    rows = len(values)
    finite_mask = np.isfinite(values)
    finite = values[finite_mask]
    non_finite = rows - len(finite)
    problems: list[str] = []
    if rows == 0:
        problems.append("no holdout predictions")
    if non_finite:
        problems.append(f"{non_finite} of {rows} holdout predictions are NaN or infinite")
    lo = float(finite.min()) if len(finite) else None
    hi = float(finite.max()) if len(finite) else None
    if task == "classification":
        classes = sorted({int(c) for c in (finite >= threshold).astype(int)})
        if lo is not None and lo == hi and rows > 1:
            problems.append(f"every holdout row gets the same score ({lo:.4g}): the model ranks nothing")
        elif len(classes) == 1 and rows > 1:
            problems.append(
                f"predicts class {classes[0]} for every holdout row at the decision threshold {threshold:g} "
                f"(scores {lo:.4g}..{hi:.4g}): it never predicts class {1 - classes[0]}"
            )
        return Sanity(rows, non_finite, lo, hi, problems, predicted_classes=classes, threshold=threshold)
    out_of_range = 0
    low, high = label_range or (None, None)
    if len(finite):
        below = int((finite < low).sum()) if low is not None else 0
        above = int((finite > high).sum()) if high is not None else 0
        out_of_range = below + above
        if out_of_range:
            problems.append(
                f"{out_of_range} of {rows} holdout predictions are outside the label's declared range "
                f"[{_bound(low)}, {_bound(high)}] (predictions {lo:.4g}..{hi:.4g})"
            )
    return Sanity(rows, non_finite, lo, hi, problems, label_range=label_range, out_of_range=out_of_range)


def _bound(value: float | None) -> str:
    return "-inf" if value is None else f"{value:g}"


def slice_values(values: pd.Series, bins: Sequence[float] | None) -> pd.Series:
    """The slice each row falls in: its value as text, or its bin (``< b0``, ``[b0, b1)``, ``>= bn``)."""
    import numpy as np
    import pandas as pd

    if bins is None:
        return values.astype("string").fillna(MISSING).astype(object)
    edges = np.asarray(bins, dtype="float64")
    x = pd.to_numeric(values, errors="raise").astype("float64").to_numpy()
    inner = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
    names = [f"< {edges[0]:g}", *inner, f">= {edges[-1]:g}"]
    idx = np.searchsorted(edges, x, side="right")
    labels = np.asarray(names, dtype=object)[np.minimum(idx, len(names) - 1)]
    labels[np.isnan(x)] = MISSING
    return pd.Series(labels, index=values.index, dtype=object)


def evaluate_slices(
    holdout: pd.DataFrame,
    y_true: np.ndarray,
    specs: Sequence[SliceSpec],
    *,
    challenger: np.ndarray,
    baseline: np.ndarray,
    champion: np.ndarray | None,
    metric: Any,
    higher_is_better: bool,
    samples: int,
    confidence: float,
    seed: int = 0,
) -> list[SliceResult]:
    """Each declared slice's values judged on their own rows: challenger vs champion and vs baseline.

    The interval of each comparison comes from a paired bootstrap of that slice's rows only, so a
    small slice gets a wide band and a large one a narrow band. A slice is "worse" when the upper
    bound of the signed difference is below 0 (worse beyond its noise).
    """
    import numpy as np
    import pandas as pd

    y = np.asarray(y_true)
    challenger, baseline = np.asarray(challenger), np.asarray(baseline)
    champion = None if champion is None else np.asarray(champion)
    results: list[SliceResult] = []
    for spec in specs:
        whole = (spec.column, None, len(holdout), spec.blocking)
        if spec.column not in holdout.columns:
            columns = ", ".join(map(str, holdout.columns))
            note = f"declared slice column {spec.column!r} is not in the holdout (columns: {columns})"
            results.append(SliceResult(*whole, "missing_column", note=note))
            continue
        column = holdout[spec.column]
        if spec.bins is not None and not pd.api.types.is_numeric_dtype(column):
            note = (
                f"slice column {spec.column!r} has bins but holds {column.dtype} values; "
                "drop 'bins' or slice a numeric column"
            )
            results.append(SliceResult(*whole, "not_numeric", note=note))
            continue
        groups = slice_values(column, spec.bins).to_numpy()
        for value in sorted(set(groups), key=str):
            mask = groups == value
            rows = int(mask.sum())
            head = (spec.column, str(value), rows, spec.blocking)
            if rows < spec.min_rows:
                note = f"{rows} rows < min_rows {spec.min_rows}"
                results.append(SliceResult(*head, "too_few_rows", note=note))
                continue

            def paired(reference: np.ndarray, mask: np.ndarray = mask) -> Comparison:
                return bootstrap_difference(
                    y[mask],
                    challenger[mask],
                    reference[mask],
                    metric,
                    higher_is_better=higher_is_better,
                    samples=samples,
                    confidence=confidence,
                    seed=seed,
                )

            try:
                vs_baseline = paired(baseline)
                vs_champion = None if champion is None else paired(champion)
            except ValueError as exc:  # e.g. roc_auc on a slice whose rows all have the same label
                results.append(SliceResult(*head, "undefined", note=f"metric undefined on these rows: {exc}"))
                continue
            status: SliceStatus = "ok"
            if vs_champion is not None and vs_champion.ci_high < 0:
                status = "worse_than_champion"
            elif vs_baseline.ci_high < 0:
                status = "worse_than_baseline"
            results.append(
                SliceResult(
                    *head,
                    status,
                    challenger=vs_baseline.challenger,
                    champion=vs_champion.champion if vs_champion else None,
                    baseline=vs_baseline.champion,
                    vs_champion=vs_champion,
                    vs_baseline=vs_baseline,
                )
            )
    return results


def check_thresholds(metrics: dict[str, float], spec: PromotionSpec) -> list[str]:
    failures = []
    for name, bound in spec.thresholds.items():
        if name not in metrics:
            failures.append(f"{name} was not computed")
            continue
        value = metrics[name]
        if bound.min is not None and value < bound.min:
            failures.append(f"{name} {value:.4f} < minimum {bound.min}")
        if bound.max is not None and value > bound.max:
            failures.append(f"{name} {value:.4f} > maximum {bound.max}")
    return failures


def _interval(c: Comparison) -> str:
    interval = f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
    return f"improvement {c.improvement:+.4f}, {c.confidence:.0%} interval {interval}"


def _slice_failure(s: SliceResult, metric: str) -> str:
    if s.status in UNJUDGEABLE:
        return f"slice {s.column!r}: {s.note}"
    worse = s.vs_champion if s.status == "worse_than_champion" else s.vs_baseline
    assert worse is not None
    other = "champion" if s.status == "worse_than_champion" else "baseline"
    return (
        f"blocking slice {s.label} ({s.rows} rows): worse than the {other} on {metric}: "
        f"{worse.challenger:.4f} vs {worse.champion:.4f} ({_interval(worse)})"
    )


@dataclass(frozen=True)
class Evidence:
    """What the gate compares: the challenger against the baseline, the champion and per slice."""

    baseline: BaselineCheck
    comparison: Comparison | None
    slices: list[SliceResult]


def gather_evidence(
    use_case: UseCase,
    holdout: pd.DataFrame,
    y_true: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    *,
    thresholds: tuple[float, float] | None = None,
) -> Evidence:
    """The paired bootstraps the gate decides on, from ``scores`` = (challenger, trivial baseline,
    champion or None), all with the spec's samples and confidence: challenger vs the baseline, vs
    the champion when there is one, and the declared slices on their own rows. The gate and the
    use-case check both call this.

    ``thresholds`` are the challenger's and the champion's decision thresholds (default 0.5 each):
    a label metric (f1, precision, ...) judges each model's labels at its own threshold.
    """
    from mlops.model.threshold import labels
    from mlops.model.training import BASELINE_STRATEGY, DECISION_THRESHOLD, LABEL_METRICS, metric_fn

    spec, seed = use_case.promotion, use_case.model.seed
    challenger, baseline, champion = scores
    if use_case.task == "classification" and spec.metric in LABEL_METRICS:
        # Labels (0/1) in place of scores: the metric labels at 0.5, so they pass through as they are.
        at_challenger, at_champion = thresholds or (DECISION_THRESHOLD, DECISION_THRESHOLD)
        challenger, baseline = labels(challenger, at_challenger), labels(baseline, DECISION_THRESHOLD)
        champion = None if champion is None else labels(champion, at_champion)
    metric, strategy = metric_fn(spec.metric, use_case.task), BASELINE_STRATEGY[use_case.task]
    samples, confidence, higher = spec.bootstrap_samples, spec.confidence, spec.higher_is_better

    def paired(other: np.ndarray) -> Comparison:
        return bootstrap_difference(
            y_true, challenger, other, metric,
            higher_is_better=higher, samples=samples, confidence=confidence, seed=seed,
        )  # fmt: skip

    slices = evaluate_slices(
        holdout, y_true, spec.slices, challenger=challenger, baseline=baseline, champion=champion,
        metric=metric, higher_is_better=higher, samples=samples, confidence=confidence, seed=seed,
    )  # fmt: skip
    return Evidence(
        baseline=BaselineCheck(strategy, paired(baseline), spec.baseline_margin),
        comparison=None if champion is None else paired(champion),
        slices=slices,
    )


def staleness(
    challenger_end: dt.date, champion_end: dt.date | None, champion_version: str, *, accepted: bool
) -> str | None:
    """Why a challenger is too old to replace the champion, or None.

    A challenger whose training window ends before the champion's learnt an older world than the
    model in production, and its own holdout (its most recent days) is older than what the
    champion was trained on: judged there, the champion can lose on days from a regime it was
    built to leave behind. Such a challenger is refused unless a person asks for it (``accepted``).
    """
    if champion_end is None or challenger_end >= champion_end or accepted:
        return None
    return (
        f"stale challenger: its data window ends {challenger_end}, before champion v{champion_version}'s "
        f"({champion_end}); retrain on recent data, or trigger training with accept_stale_challenger "
        "to judge it anyway (recorded)"
    )


def decide(
    challenger_metrics: dict[str, float],
    spec: PromotionSpec,
    *,
    comparison: Comparison | None,
    has_champion: bool,
    sanity: Sanity,
    baseline: BaselineCheck | None,
    slices: Sequence[SliceResult] = (),
    mode: str | None = None,
    stale: str | None = None,
) -> Decision:
    """The gate's decision for one challenger, from the evidence the gate gathered.

    ``sanity`` is :func:`check_outputs` on the challenger's holdout predictions; ``baseline`` and
    (with a champion) ``comparison`` are required whenever those predictions can be scored, and
    every slice declared in ``spec.slices`` must appear in ``slices`` (a declared slice that was
    not evaluated refuses). ``mode`` is the run's requested mode (a run param): it may only be the
    configured mode or a stricter one (:meth:`~mlops.core.config.PromotionSpec.run_mode` refuses
    a looser one).
    """
    mode = spec.run_mode(mode)
    threshold_failures = check_thresholds(challenger_metrics, spec)
    if sanity.scorable and baseline is None:
        raise ValueError(
            "the challenger's predictions can be scored, so a comparison with the baseline is required"
        )
    if sanity.scorable and has_champion and comparison is None:
        raise ValueError("a champion exists, so a comparison on the shared holdout is required")
    evidence: dict[str, Any] = {
        "threshold_failures": threshold_failures,
        "comparison": comparison,
        "sanity": sanity,
        "baseline": baseline,
        "slices": list(slices),
    }
    if mode == "disabled":
        reason = "promotion is disabled for this use case"
        return Decision(False, False, "disabled", reason, failures=[], **evidence)

    failures = [stale] if stale else []
    failures += ["outputs: " + p for p in sanity.problems]
    failures += ["fails thresholds: " + "; ".join(threshold_failures)] if threshold_failures else []
    passed: list[str] = []
    if baseline is not None:
        b = baseline.comparison
        versus = f"the {baseline.strategy} baseline on {spec.metric}: {b.challenger:.4f} vs {b.champion:.4f}"
        if baseline.passed:
            passed.append(f"beats {versus} ({_interval(b)} > margin {baseline.margin})")
        else:
            failures.append(f"not clearly better than {versus} ({_interval(b)} <= margin {baseline.margin})")
    else:  # only when the predictions cannot be scored (checked above)
        failures.append("not compared with the baseline or the champion: the predictions cannot be scored")
    if has_champion and comparison is not None:
        c = comparison
        ci = f"{c.confidence:.0%} lower bound {c.ci_low:+.4f}"
        if c.ci_low > spec.min_improvement:
            passed.insert(
                0,
                f"beats champion on {spec.metric}: {c.challenger:.4f} vs {c.champion:.4f} "
                f"(improvement {c.improvement:+.4f}, {ci} > margin {spec.min_improvement})",
            )
        else:
            verdict = "worse than" if c.improvement < 0 else "not clearly better than"
            failures.append(
                f"{verdict} champion on {spec.metric}: {c.challenger:.4f} vs {c.champion:.4f} "
                f"(improvement {c.improvement:+.4f}, {ci} <= margin {spec.min_improvement})"
            )
    if sanity.scorable:
        judged = {s.column for s in slices}
        unjudged = [d.column for d in spec.slices if d.column not in judged]
        failures += [f"slice {column!r} was declared but not evaluated" for column in unjudged]
        failures += [_slice_failure(s, spec.metric) for s in slices if s.blocks]
    promote = not failures
    if promote:
        first = "first model: passes every threshold and there is no champion yet"
        lead = passed.pop(0) if has_champion else first
        reason = "; ".join([lead, *passed, *_slice_notes(slices)])
    else:
        reason = "; ".join(failures)
    evidence["failures"] = failures
    if mode == "approval" and promote:
        return Decision(True, False, "awaiting_approval", "awaiting approval: " + reason, **evidence)
    if mode == "dry_run":
        outcome: Outcome = "dry_run_promote" if promote else "dry_run_reject"
        return Decision(promote, False, outcome, "dry run: " + reason, **evidence)
    return Decision(promote, True, "promoted" if promote else "rejected", reason, **evidence)


def _slice_notes(slices: Sequence[SliceResult]) -> list[str]:
    """What a reviewer should see about slices that did not block: worse non-blocking ones."""
    worse = [s for s in slices if s.status in WORSE and not s.blocks]
    if not worse:
        return []
    named = ", ".join(f"{s.label} ({s.status.replace('_', ' ')})" for s in worse)
    return [f"worse on non-blocking slice(s) {named}"]
