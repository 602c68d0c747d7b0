"""A classifier's decision threshold: chosen on the validation split, stored with the model version.

Training chooses it (:func:`choose_threshold`) for the use case's ``model.threshold`` objective
and tags the MLflow run and the model version with it (``tags.DECISION_THRESHOLD``). Batch
scoring, the model server and the gate read it back from the version (:func:`threshold_of`):
a row whose score is at or above it is labelled positive. A version registered before
thresholds were chosen has no tag and keeps the old rule, 0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from mlops.model import tags
from mlops.model.training import DECISION_THRESHOLD as DEFAULT_THRESHOLD

if TYPE_CHECKING:
    import numpy as np

    from mlops.core.config import DecisionThresholdSpec, UseCase

# The column (batch predictions) and field (the model server's answer) holding the predicted label.
PREDICTED_LABEL: Final = "predicted_label"


@dataclass(frozen=True)
class ChosenThreshold:
    """The threshold and what it gives on the rows it was chosen on (the validation split)."""

    value: float
    objective: str
    precision: float
    recall: float
    f1: float
    cost: float | None = None  # objective "cost": the total cost of the errors on those rows

    def as_tags(self) -> dict[str, str]:
        """The tags that store it on the training run and the model version."""
        return {tags.DECISION_THRESHOLD: repr(self.value), tags.THRESHOLD_OBJECTIVE: self.objective}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoThreshold(ValueError):
    """The validation split cannot choose a threshold (it has no positive row)."""


def choose_threshold(y_true: Any, scores: Any, spec: DecisionThresholdSpec) -> ChosenThreshold:
    """The threshold that is best on these rows for ``spec.objective``; ties go to the one nearest 0.5.

    Every distinct way of cutting the sorted scores is a candidate; each is represented by 0.5
    when 0.5 cuts the scores that way, else by the midpoint between the neighbouring scores (the
    threshold least sensitive to a small shift of the scores). ``precision_at_recall`` takes the
    best precision among candidates whose recall is at least ``spec.min_recall``.
    """
    import numpy as np

    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype="float64")
    if len(y) != len(s) or len(y) == 0:
        raise ValueError(f"a threshold needs as many labels as scores, at least one ({len(y)} vs {len(s)})")
    if not np.isfinite(s).all():
        raise ValueError("a threshold cannot be chosen on scores that are NaN or infinite")
    positives = int(y.sum())
    if positives == 0:
        raise NoThreshold(
            f"the validation split has no positive row among {len(y)}: no threshold can be chosen; "
            "widen training.window_days or split.validation"
        )
    cut, tp, fp = _cuts(y, s)
    fn = positives - tp
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = tp / positives
    f1 = 2 * tp / (predicted + positives)
    cost = None
    if spec.objective == "f1":
        score = f1
    elif spec.objective == "precision_at_recall":
        assert spec.min_recall is not None  # the config requires it for this objective
        # The last cut labels every row positive (recall 1), so some cut always qualifies.
        score = np.where(recall >= spec.min_recall - 1e-12, precision, -1.0)
    else:
        assert spec.cost is not None  # the config requires it for this objective
        cost = fp * spec.cost.false_positive + fn * spec.cost.false_negative
        score = -cost
    best = np.flatnonzero(np.isclose(score, score.max(), rtol=0, atol=1e-12))
    i = int(best[np.argmin(np.abs(cut[best] - DEFAULT_THRESHOLD))])
    return ChosenThreshold(
        value=float(cut[i]),
        objective=spec.objective,
        precision=float(precision[i]),
        recall=float(recall[i]),
        f1=float(f1[i]),
        cost=float(cost[i]) if cost is not None else None,
    )


def choose_for(use_case: UseCase, y_val: Any, val_scores: Any) -> ChosenThreshold | None:
    """A classifier's threshold for its ``model.threshold`` objective, chosen on the validation
    split's labels and scores; None for a regression (it has no labels to decide)."""
    spec = use_case.decision_threshold
    if spec is None:
        return None
    try:
        return choose_threshold(y_val, val_scores, spec)
    except NoThreshold as exc:
        raise NoThreshold(f"use case {use_case.name!r}: {exc}") from None


def _cuts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each way to cut the scores (none positive, the top score positive, ..., all positive): its
    representative threshold and its true and false positive counts."""
    import numpy as np

    distinct, inverse = np.unique(s, return_inverse=True)  # ascending
    pos = np.bincount(inverse, weights=y, minlength=len(distinct))[::-1]
    neg = np.bincount(inverse, weights=1 - y, minlength=len(distinct))[::-1]
    tp = np.concatenate([[0.0], np.cumsum(pos)])
    fp = np.concatenate([[0.0], np.cumsum(neg)])
    # Cut k labels the k highest distinct scores positive: any t in (lower[k], upper[k]].
    desc = distinct[::-1]
    upper = np.concatenate([[np.inf], desc])
    lower = np.concatenate([desc, [-np.inf]])
    inside = (lower < DEFAULT_THRESHOLD) & (upper >= DEFAULT_THRESHOLD)
    above_all = max(1.0, float(desc[0]))
    middle = np.concatenate([[np.nextafter(above_all, np.inf)], (desc[1:] + desc[:-1]) / 2, [desc[-1] / 2]])
    # Above every score: nothing positive; below the lowest: all positive (scores are >= 0, so
    # half the lowest is still below it, and 0 when the lowest is 0 labels it positive too).
    middle[-1] = min(middle[-1], desc[-1])
    cut = np.where(inside, DEFAULT_THRESHOLD, middle)
    return cut, tp, fp


def labels(scores: Any, threshold: float) -> np.ndarray:
    """The predicted labels (0/1) of ``scores`` at ``threshold``: positive at or above it."""
    import numpy as np

    return (np.asarray(scores, dtype="float64") >= threshold).astype("int8")


def threshold_of(version: Any) -> float:
    """The decision threshold a model version was registered with; 0.5 for one that has none.

    ``version`` is a registry entry (``.tags``, ``.version``). A tag that is not a number in
    [0, 1] (written by hand) raises ValueError naming the version: it is never guessed.
    """
    raw = (getattr(version, "tags", None) or {}).get(tags.DECISION_THRESHOLD)
    if raw is None or raw == "":
        return DEFAULT_THRESHOLD
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0 + 1e-9:
        raise ValueError(
            f"model version v{getattr(version, 'version', '?')} has {tags.DECISION_THRESHOLD}={raw!r}, "
            "not a number in [0, 1]; correct the tag in the MLflow registry or retrain"
        )
    return value


def describe(version: Any, y_true: Any, scores: Any) -> dict[str, Any]:
    """A version's threshold with the precision, recall and F1 it gives on ``y_true`` / ``scores``
    (the gate's holdout): what the evidence pack and the ledger show."""
    from sklearn import metrics as m

    value = threshold_of(version)
    predicted = labels(scores, value)
    objective = (getattr(version, "tags", None) or {}).get(tags.THRESHOLD_OBJECTIVE) or None
    return {
        "value": value,
        "objective": objective,  # None: registered without one, so the default 0.5
        "precision": float(m.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(m.recall_score(y_true, predicted, zero_division=0)),
        "f1": float(m.f1_score(y_true, predicted, zero_division=0)),
    }
