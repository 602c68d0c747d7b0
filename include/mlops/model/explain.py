"""Per-prediction explanations: how much each feature moved one row's score.

A feature's contribution to a row is the row's score minus the score with that feature set to its
baseline (the training split's median, or its most frequent category): "this row's churn
probability is 0.31 higher because its monthly charges are 120 rather than the typical 64". It
works for any fitted pipeline (trees included) with one extra prediction per feature, so it is
cheap next to SHAP's exact tree path enumeration and needs no extra library; contributions do not
sum exactly to the score's distance from the baseline when features interact.

Training logs the baseline (``explain_baseline.json``), the mean absolute contribution per
feature (metrics ``contrib.<feature>``) and a sample of the holdout's contributions
(``contributions_sample.csv``). With ``scoring.explain: true`` scoring writes a
``contrib_<feature>`` column per feature beside each score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.model.training import predict_scores

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.core.config import UseCase

BASELINE_ARTIFACT = "explain_baseline.json"
PREFIX = "contrib_"


def baseline(X_train: pd.DataFrame, use_case: UseCase) -> dict[str, Any]:
    """The typical value of each feature in the training split: median (numeric) or mode (categorical)."""
    out: dict[str, Any] = {}
    for name in use_case.feature_names:
        column = X_train[name]
        if name in use_case.categorical_features:
            counts = column.dropna().astype(str).value_counts()
            out[name] = str(counts.index[0]) if len(counts) else None
        else:
            median = column.astype("float64").median()
            out[name] = None if median != median else float(median)  # NaN: no value seen
    return out


def contributions(
    model: Any, X: pd.DataFrame, base: dict[str, Any], task: str, scores: np.ndarray | None = None
) -> pd.DataFrame:
    """One column per feature: score(row) - score(row with the feature at its baseline)."""
    import pandas as pd

    scores = predict_scores(model, X, task) if scores is None else scores
    out = {}
    for name, value in base.items():
        moved = X.copy()
        moved[name] = value
        out[f"{PREFIX}{name}"] = scores - predict_scores(model, moved, task)
    return pd.DataFrame(out, index=X.index)
