"""Training: point-in-time training sets, splits, the scikit-learn pipeline and its metrics.

Pure functions over DataFrames; MLflow and the registry live in ``mlops.model.registry``.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import TYPE_CHECKING, Any

from mlops.data.features import ENTITY, EVENT_TIME, LABEL, point_in_time_join

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.data.feature_store import FeatureStore

SPLITS = ("train", "validation", "holdout")
# A classifier's score at or above this is a predicted positive, unless the model version has a
# threshold of its own (chosen on validation at training: mlops.model.threshold).
DECISION_THRESHOLD = 0.5
# Metrics of the predicted labels (at a decision threshold), not of the scores.
LABEL_METRICS = frozenset({"accuracy", "f1", "precision", "recall"})
# The trivial model a challenger must beat (scikit-learn's DummyClassifier / DummyRegressor strategy).
BASELINE_STRATEGY = {"classification": "prior", "regression": "mean"}


class NotEnoughData(ValueError):
    pass


def training_window(
    use_case: UseCase, interval: dt.date, window_days: int | None = None
) -> tuple[dt.date, dt.date, dt.datetime]:
    """First day, last day and the as-of time (end of ``interval``) of a training run.

    ``window_days`` overrides the config's window for one run (a retrain after concept drift
    learns from the days since the change).
    """
    start = interval - dt.timedelta(days=(window_days or use_case.training.window_days) - 1)
    as_of = dt.datetime.combine(interval + dt.timedelta(days=1), dt.time())
    return start, interval, as_of


def build_training_set(
    store: FeatureStore, use_case: UseCase, interval: dt.date, window_days: int | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Labels known by the end of ``interval`` joined point-in-time to their features."""
    start, end, as_of = training_window(use_case, interval, window_days)
    # Features and labels may come from earlier days than the labels' own partition.
    features = store.read_features(use_case.name, start, end)
    labels = store.read_labels(use_case.name, start, end)
    if features.empty or labels.empty:
        raise NotEnoughData(
            f"use case {use_case.name!r}: no feature partitions between {start} and {end}; run the data DAG first"
        )
    frame = point_in_time_join(
        labels, features, as_of=as_of, max_feature_age_days=use_case.training.window_days
    )
    partitions = {
        d.isoformat(): m["content_hash"]
        for d, m in store.partitions(use_case.name).items()
        if start <= d <= end
    }
    if len(frame) < 50:
        raise NotEnoughData(
            f"use case {use_case.name!r}: only {len(frame)} labelled rows known by {as_of:%Y-%m-%d} "
            f"in {start}..{end}; need at least 50"
        )
    lineage = {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "as_of": as_of.isoformat(),
        "rows": len(frame),
        "feature_partitions": partitions,
    }
    return frame, lineage


def split(frame: pd.DataFrame, use_case: UseCase) -> dict[str, pd.DataFrame]:
    """Train / validation / holdout without overlap: by time (latest last) or at random (seeded)."""
    import numpy as np

    spec = use_case.split
    n = len(frame)
    if spec.strategy == "time":
        ordered = frame.sort_values([EVENT_TIME, ENTITY], kind="stable").reset_index(drop=True)
    else:
        rng = np.random.default_rng(use_case.model.seed)
        ordered = frame.iloc[rng.permutation(n)].reset_index(drop=True)
    n_hold = max(1, round(n * spec.holdout))
    n_val = max(1, round(n * spec.validation))
    n_train = n - n_hold - n_val
    if n_train < 10:
        raise NotEnoughData(f"use case {use_case.name!r}: {n} rows leave only {n_train} for training")
    return {
        "train": ordered.iloc[:n_train].reset_index(drop=True),
        "validation": ordered.iloc[n_train : n_train + n_val].reset_index(drop=True),
        "holdout": ordered.iloc[n_train + n_val :].reset_index(drop=True),
    }


def make_pipeline(
    use_case: UseCase, overrides: dict[str, Any] | None = None, *, estimator: str | None = None
) -> Any:
    """The scikit-learn pipeline the config declares: impute/scale numerics, one-hot categoricals.

    ``estimator`` (a search candidate's) replaces the configured one, and then ``overrides`` are
    its complete hyperparameters; otherwise they are merged over the config's.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlops.core.config import _estimator_known

    name = _estimator_known(estimator or use_case.model.estimator)
    module, _, cls_name = name.rpartition(".")
    estimator_cls = getattr(importlib.import_module(module), cls_name)
    params = (
        dict(overrides or {}) if estimator else dict(use_case.model.hyperparameters) | dict(overrides or {})
    )
    try:
        model = estimator_cls(**params)
    except TypeError as exc:
        raise ValueError(f"use case {use_case.name!r}: bad hyperparameters for {name}: {exc}") from None
    if "random_state" in model.get_params():
        model.set_params(random_state=use_case.model.seed)
    pre = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                use_case.numeric_features,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                use_case.categorical_features,
            ),
        ],
        remainder="drop",
    )
    return Pipeline([("features", pre), ("model", model)])


def fit_baseline(X: pd.DataFrame, y: np.ndarray, task: str) -> Any:
    """The trivial baseline for the task, fitted on ``X, y``: the class prior, or the mean label.

    It ignores the features: a model that cannot beat it on the holdout has learned nothing.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor

    strategy = BASELINE_STRATEGY[task]
    if task == "classification":
        return DummyClassifier(strategy=strategy).fit(X, y)
    return DummyRegressor(strategy=strategy).fit(X, y)


def predict_scores(model: Any, X: pd.DataFrame, task: str) -> np.ndarray:
    """The number the platform reports: P(positive class) for classification, the value for regression."""
    if task == "classification":
        return model.predict_proba(X)[:, 1]
    return model.predict(X)


def compute_metrics(
    y_true: np.ndarray, scores: np.ndarray, task: str, threshold: float = DECISION_THRESHOLD
) -> dict[str, float]:
    """The task's metrics; a classifier's label metrics (``LABEL_METRICS``) at ``threshold``."""
    import numpy as np
    from sklearn import metrics as m

    if task == "classification":
        labels = (scores >= threshold).astype(int)
        out = {
            "log_loss": float(m.log_loss(y_true, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
            "accuracy": float(m.accuracy_score(y_true, labels)),
            "f1": float(m.f1_score(y_true, labels, zero_division=0)),
            "precision": float(m.precision_score(y_true, labels, zero_division=0)),
            "recall": float(m.recall_score(y_true, labels, zero_division=0)),
        }
        if len(np.unique(y_true)) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y_true, scores))
            out["average_precision"] = float(m.average_precision_score(y_true, scores))
        return out
    return {
        "rmse": float(np.sqrt(m.mean_squared_error(y_true, scores))),
        "mae": float(m.mean_absolute_error(y_true, scores)),
        "r2": float(m.r2_score(y_true, scores)),
    }


def metric_fn(name: str, task: str) -> Any:
    """A (y_true, scores) -> float function for the promotion metric, for bootstrapping.

    Its ``__name__`` is the metric's name (the gate's comparisons are labelled with it).
    """
    fn = _metric(name, task)

    def metric(y_true: Any, scores: Any) -> float:
        return float(fn(y_true, scores))

    metric.__name__ = metric.__qualname__ = name
    return metric


def _metric(name: str, task: str) -> Any:
    import numpy as np
    from sklearn import metrics as m

    if name == "roc_auc":
        return roc_auc
    if name == "average_precision":
        return m.average_precision_score
    if name == "log_loss":
        return lambda y, s: m.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7), labels=[0, 1])
    # rmse and mae in numpy: the same numbers as scikit-learn's, without its per-call input checks.
    if name == "rmse":
        return lambda y, s: np.sqrt(np.mean((np.asarray(y, dtype="float64") - s) ** 2))
    if name == "mae":
        return lambda y, s: np.mean(np.abs(np.asarray(y, dtype="float64") - s))
    if name == "r2":
        return m.r2_score
    if name in LABEL_METRICS:
        fn = getattr(m, f"{name}_score")
        return lambda y, s: fn(y, (s >= DECISION_THRESHOLD).astype(int))
    raise ValueError(f"unknown promotion metric {name!r} for a {task} use case")


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of binary labels as the Mann-Whitney statistic (midranks for ties).

    The same number as scikit-learn's ``roc_auc_score`` for two classes, without its input checks:
    the gate computes thousands of these per decision (bootstrap resamples x slices).
    """
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(y_true)
    classes = np.unique(y)
    if len(classes) != 2:
        raise ValueError(f"ROC AUC needs two classes in y_true, got {len(classes)}")
    positive = y == classes[1]
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    ranks = rankdata(np.asarray(scores, dtype="float64"))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def X_y(frame: pd.DataFrame, use_case: UseCase) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[use_case.feature_names], frame[LABEL].to_numpy()
