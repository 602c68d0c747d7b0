"""MLflow tag names: the keys this platform sets on runs and model versions, and searches by.

A retried task finds what an earlier try wrote through these tags (the training run by
``airflow_run_id`` and ``training_set_hash``, a candidate by its parent run and name), and the
drift check reads ``feature_partitions`` back from the champion's version. Set and search them
through these names only, so a renamed tag cannot leave a search that silently finds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# MLflow's own namespace: tags MLflow sets itself (source, user, parent run); never copied.
MLFLOW_PREFIX: Final = "mlflow."
# MLflow's tag that makes a run the child of another (a candidate of its training run).
PARENT_RUN_ID: Final = "mlflow.parentRunId"

# Lineage: on the training run from its first moment, and copied onto the model version it registers.
USE_CASE: Final = "use_case"  # also on the experiment and on drift-check runs
GIT_COMMIT: Final = "git_commit"
AIRFLOW_DAG_ID: Final = "airflow_dag_id"
AIRFLOW_RUN_ID: Final = "airflow_run_id"
TRAINING_SET_HASH: Final = "training_set_hash"
TRAINING_SET_URI: Final = "training_set_uri"
DATA_WINDOW: Final = "data_window"
FEATURE_VERSION: Final = "feature_version"
TRIGGER_REASON: Final = "trigger_reason"
# On the model version only: the feature partitions it was trained on (JSON), read by the drift check.
FEATURE_PARTITIONS: Final = "feature_partitions"
# A classifier's decision threshold (mlops.model.threshold), chosen on the validation split, and the
# objective it was chosen for: on the training run and its model version; scoring and serving read it.
DECISION_THRESHOLD: Final = "decision_threshold"
THRESHOLD_OBJECTIVE: Final = "threshold_objective"

# The gate's (or a reviewer's) decision, on the model version and on the training run.
PROMOTION_OUTCOME: Final = "promotion_outcome"
PROMOTION_REASON: Final = "promotion_reason"
# A longer reason is cut to this: within what MLflow stores in a tag on a run (8000) and on a version.
MAX_VALUE_LENGTH: Final = 5000

# Candidate search: on each candidate's child run, and on the training run.
CANDIDATE: Final = "candidate"
RUN_TYPE: Final = "run_type"  # "candidate" here; "drift_check" on drift-check runs
WORKER: Final = "worker"
ERROR: Final = "error"
BEST_CANDIDATE: Final = "best_candidate"

# Drift checks (mlops.monitoring.drift): on the drift-check run, and the last result on the version.
MODEL_NAME: Final = "model_name"
MODEL_VERSION: Final = "model_version"
DRIFT_DAY: Final = "drift_day"
DRIFTED: Final = "drifted"
LAST_DRIFT_CHECK: Final = "last_drift_check"


def promotion(outcome: str, reason: str) -> dict[str, str]:
    """The decision's tags: its outcome and its reason (cut to what MLflow stores)."""
    return {PROMOTION_OUTCOME: outcome, PROMOTION_REASON: reason[:MAX_VALUE_LENGTH]}


def search_filter(tags: Mapping[str, str]) -> str:
    """A ``search_runs`` filter for runs carrying every one of ``tags`` with exactly that value.

    A value with a quote in it cannot be written into MLflow's filter language: ValueError,
    rather than a search that fails on the server or matches something else.
    """
    if not tags:
        raise ValueError("an MLflow tag search needs at least one tag")
    clauses = []
    for key, value in tags.items():
        if "'" in value:
            raise ValueError(f"cannot search MLflow for {value!r}: it contains a quote")
        name = key if key.isidentifier() else f"`{key}`"  # a dotted key (mlflow.parentRunId) is quoted
        clauses.append(f"tags.{name} = '{value}'")
    return " and ".join(clauses)
