"""The promotion gate as data and pure functions (no MLflow here).

How a challenger is judged, in order:

1. ``disabled`` mode: nothing is promoted.
2. Absolute thresholds from the config (e.g. ``roc_auc >= 0.70``): failing any one rejects it.
3. No champion yet: a challenger that passes the thresholds is promoted.
4. Champion vs challenger on the **same, latest holdout**: a paired bootstrap (resampling the
   holdout rows, scoring both models on each resample) gives the distribution of the metric
   difference, signed so that positive means the challenger is better. The challenger is
   promoted only if the lower end of the one-sided ``confidence`` interval of that difference is
   above ``min_improvement``. A tie within noise, or a worse challenger, is never promoted.
5. ``dry_run`` mode records the decision and changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from mlops.core.config import PromotionSpec
    from mlops.core.results import Outcome


@dataclass(frozen=True)
class Comparison:
    metric: str
    challenger: float
    champion: float
    improvement: float  # signed: > 0 means the challenger is better
    ci_low: float
    ci_high: float
    samples: int
    confidence: float


APPROVE, REJECT = "Approve", "Reject"  # the options of a human approval request


@dataclass(frozen=True)
class Decision:
    promote: bool  # the gate's verdict
    apply: bool  # whether aliases change (False in dry_run / disabled)
    outcome: Outcome  # one of the gate's: promoted, rejected, awaiting_approval, dry_run_*, disabled
    reason: str
    threshold_failures: list[str]
    comparison: Comparison | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
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


def decide(
    challenger_metrics: dict[str, float],
    spec: PromotionSpec,
    *,
    comparison: Comparison | None,
    has_champion: bool,
    mode: str | None = None,
) -> Decision:
    """The gate's decision for one challenger.

    ``mode`` is the run's requested mode (a run param): it may only be the configured mode or a
    stricter one (:meth:`~mlops.core.config.PromotionSpec.run_mode` refuses a looser one).
    """
    mode = spec.run_mode(mode)
    failures = check_thresholds(challenger_metrics, spec)
    if mode == "disabled":
        return Decision(False, False, "disabled", "promotion is disabled for this use case", failures, comparison)
    if failures:
        promote, reason = False, "fails thresholds: " + "; ".join(failures)
    elif not has_champion:
        promote, reason = True, "first model: passes every threshold and there is no champion yet"
    elif comparison is None:
        raise ValueError("a champion exists, so a comparison on the shared holdout is required")
    else:
        c = comparison
        ci = f"{c.confidence:.0%} lower bound {c.ci_low:+.4f}"
        if c.ci_low > spec.min_improvement:
            promote = True
            reason = (
                f"beats champion on {spec.metric}: {c.challenger:.4f} vs {c.champion:.4f} "
                f"(improvement {c.improvement:+.4f}, {ci} > margin {spec.min_improvement})"
            )
        else:
            promote = False
            verdict = "worse than" if c.improvement < 0 else "not clearly better than"
            reason = (
                f"{verdict} champion on {spec.metric}: {c.challenger:.4f} vs {c.champion:.4f} "
                f"(improvement {c.improvement:+.4f}, {ci} <= margin {spec.min_improvement})"
            )
    if mode == "approval" and promote:
        return Decision(True, False, "awaiting_approval", "awaiting approval: " + reason, failures, comparison)
    if mode == "dry_run":
        return Decision(promote, False, "dry_run_promote" if promote else "dry_run_reject", "dry run: " + reason, failures, comparison)
    return Decision(promote, True, "promoted" if promote else "rejected", reason, failures, comparison)
