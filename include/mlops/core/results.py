"""Task results: what each task returns (its XCom) and what the next task or a UI button reads.

One typed record per task, defined here and nowhere else. The functions that produce them are
annotated with these types, the DAG tasks return them unchanged, and the plugin's buttons name
the field they open through :data:`RESULT_LINKS`, so renaming a field breaks a test instead of
silently hiding a button (``tests/dags/test_result_links.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, NotRequired, TypedDict, get_args


class RawManifest(TypedDict):
    """``extract_batch``: the archived batch (also ``raw/<uc>/<day>/_manifest.json``)."""

    use_case: str
    interval: str
    sha256: str
    bytes: int
    format: str
    source: str
    received_at: str
    uri: str
    # Earlier deliveries of the same day, oldest first (their objects stay in the archive).
    superseded: NotRequired[list[dict[str, Any]]]
    # When the upstream file landed (the store's modification time), if known: tells late deliveries.
    landed_at: NotRequired[str | None]


class BatchPart(TypedDict):
    """``extract_batch`` (``split_batch``): one partition of a day's delivery, the unit a mapped task validates.

    A CSV part is the byte range ``[start, end)`` of the archived object, cut at line ends (the
    header line is read with every part); a Parquet delivery is one part.
    """

    index: int
    start: int
    end: int


class PartCheck(TypedDict):
    """``check_partition``: a partition's rows and whether its checks passed; the details (the GX
    result, the event-time range) are at ``validation/<uc>/<day>/parts/<sha256>/<index>.json``."""

    index: int
    rows: int
    passed: bool
    readable: bool


class ValidationSummary(TypedDict):
    """``validate_batch``: the gate's verdict (also ``validation/<uc>/<day>/summary.json``)."""

    passed: bool
    rows: int
    expectations_evaluated: int
    reason: str | None
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    use_case: str
    interval: str
    sha256: str
    data_docs_uri: NotRequired[str]
    quarantine_uri: NotRequired[str]
    # The partitions the day was checked in; materialize_features reads the same ones.
    parts: NotRequired[list[BatchPart]]


class FeaturePartition(TypedDict):
    """``materialize_features``: a committed feature partition (its manifest)."""

    use_case: str
    interval: str
    rows: int
    label_rows: int
    content_hash: str
    # The use case's feature definitions and code when it was built (UseCase.feature_version).
    feature_version: NotRequired[str]


class LabelPartition(TypedDict):
    """``store_labels``: the labels one day's delivery added to the label table."""

    use_case: str
    interval: str
    rows: int
    content_hash: str


class TrainingSetManifest(TypedDict):
    """``prepare_training_set``: the point-in-time training set and its lineage."""

    use_case: str
    interval: str
    run_key: str
    rows: dict[str, int]
    lineage: dict[str, Any]
    training_set_hash: str
    uris: dict[str, str]


class CandidateResult(TypedDict):
    """``train_candidate`` (one per candidate) and ``select_candidate`` (the best): a fitted candidate."""

    name: str
    estimator: str
    hyperparameters: dict[str, Any]
    run_id: str  # the candidate's MLflow child run
    parent_run_id: str  # the training run's MLflow run
    worker: str
    status: str  # ok | failed
    metrics: dict[str, float]  # validation metrics
    error: str | None


class TrainedModel(TypedDict):
    """``train_model``: the registered model version and its MLflow run."""

    version: str
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    mlflow_run_url: str


# Promotion outcomes: every value a ledger record's ``outcome`` can take, and the groups that
# readers act on. Training, the registry, the rollback, the pages and the alerts use these names;
# mypy refuses any other string where an ``Outcome`` is expected.
Outcome = Literal[
    "promoted",  # the gate promoted the challenger (auto mode)
    "rejected",  # the gate refused it
    "awaiting_approval",  # the gate would promote; a person decides (approval mode)
    "dry_run_promote",  # dry run: would have promoted; nothing moved
    "dry_run_reject",  # dry run: would have refused
    "disabled",  # promotion is disabled for the use case
    "approved",  # a reviewer approved; the challenger is the champion
    "rejected_by_reviewer",
    "approval_timed_out",  # nobody answered in time
    "approval_stale",  # approved, but the champion changed while the request waited
    "approval_refused",  # answered by someone who may not approve it (the run's own trigger, or not an approver)
    "rollback",  # a person made an earlier champion the champion again
    "rollback_noop",  # the rollback's target already was the champion
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
# The gate's outcomes that move an alias: champion (promoted) or challenger (the others).
ALIAS_OUTCOMES: Final[tuple[Outcome, ...]] = ("promoted", "rejected", "awaiting_approval")
# A person's (or the clock's) answer to an approval request: the request is closed.
APPROVAL_ANSWERS: Final[tuple[Outcome, ...]] = (
    "approved",
    "rejected_by_reviewer",
    "approval_timed_out",
    "approval_stale",
    "approval_refused",
)
# Outcomes after which the record's version was the champion.
CHAMPION_OUTCOMES: Final[tuple[Outcome, ...]] = ("promoted", "approved", "rollback")
ROLLBACK_OUTCOMES: Final[tuple[Outcome, ...]] = ("rollback", "rollback_noop")


class Cause(TypedDict):
    """Who or what started a run: a person, an upstream system's request, the drift check, a schedule."""

    kind: Literal["user", "upstream", "drift", "schedule", "asset", "unknown"]
    # The user who triggered it (kinds user and upstream: the account the request came with), if known.
    user: str | None
    # The upstream request id, the drift run's id, or the schedule's run id.
    ref: str | None


class PromotionRecord(TypedDict):
    """``evaluate_and_promote`` and ``rollback_champion``: one entry of the promotion ledger."""

    use_case: str
    decided_at: str
    version: str
    champion_before: str | None
    outcome: Outcome
    promoted: bool
    reason: str
    airflow_dag_id: str
    airflow_run_id: str
    metric: NotRequired[str]
    challenger_metrics: NotRequired[dict[str, float]]  # label metrics at the challenger's threshold
    # A classifier's decision threshold (mlops.model.threshold): value, the objective it was chosen
    # for on validation (None: registered without one, so 0.5), precision, recall and F1 on the holdout.
    decision_threshold: NotRequired[dict[str, Any] | None]
    comparison: NotRequired[dict[str, Any] | None]
    threshold_failures: NotRequired[list[str]]
    # The gate's evidence beyond the champion comparison (mlops.model.promotion): every failing check
    # in the order they ran (the reason joins them); the challenger's output sanity (rows, NaN/inf
    # count, score range, predicted classes, out-of-range count, problems); the trivial baseline
    # (strategy, its metric value, the challenger's paired bootstrap improvement and interval,
    # margin, passed); and one entry per declared slice value (column, value, rows, blocking, status,
    # each model's metric, the paired intervals vs champion and baseline, whether it blocked).
    failed_checks: NotRequired[list[str]]
    sanity: NotRequired[dict[str, Any] | None]
    baseline: NotRequired[dict[str, Any] | None]
    slices: NotRequired[list[dict[str, Any]] | None]
    mode: NotRequired[str]
    aliases_after: NotRequired[dict[str, Any]]
    mlflow_run_id: NotRequired[str]
    holdout_rows: NotRequired[int]
    mlflow_run_url: NotRequired[str]
    lineage: NotRequired[dict[str, Any]]  # data window, partitions, training set hash and URI, code commit
    # The challenger's data window against the champion's: a stale one is refused unless asked for.
    freshness: NotRequired[dict[str, Any]]
    # Who or what caused the decision: the run's trigger (for a rollback, who asked for it).
    triggered_by: NotRequired[Cause]
    # Human approval (promotion mode "approval"): who answered, when, and what they wrote.
    reviewed_by: NotRequired[str | None]
    reviewed_at: NotRequired[str | None]
    review_comment: NotRequired[str]
    # The decision's evidence pack (mlops.model.evidence): its data (JSON) and its page (HTML), lake URIs.
    evidence_uri: NotRequired[str]
    evidence_html_uri: NotRequired[str]


class ScoringManifest(TypedDict):
    """``score_partition``: one scored day (also ``predictions/<uc>/<day>/_manifest.json``)."""

    use_case: str
    interval: str
    uri: str
    rows: int
    seconds: float
    rows_per_second: float | None
    model_name: str
    model_version: str
    model_run_id: str
    output_column: str
    # A classifier's: the champion's decision threshold, at which predicted_label is 1.
    decision_threshold: NotRequired[float]
    feature_stats: NotRequired[dict[str, Any]]
    prediction_stats: NotRequired[dict[str, Any]]  # count, mean, and histogram bins or quantiles
    worker: NotRequired[str]
    # What made these predictions (model version, feature version and code, options): a day scored
    # again with the same is skipped.
    scored_with: NotRequired[dict[str, Any]]


class _DriftVerdict(TypedDict):
    """What every record of a drift check holds."""

    day: str
    model_version: str
    drift_share: float
    dataset_drift: bool
    drifted: bool
    reasons: list[str]
    report_uri: str


class DriftCheckResult(_DriftVerdict):
    """``check_drift``: the verdict of one drift check (the full summary is in the lake)."""

    top_features: list[tuple[str, float]]
    summary_uri: str
    mlflow_run_id: str
    alert: str


class DriftSummary(_DriftVerdict):
    """``check_drift``'s summary of a day (``layout.drift_summary``), as the pages read it."""

    features: NotRequired[dict[str, dict[str, Any]]]  # per feature: score, method, threshold, drifted
    performance: NotRequired[dict[str, Any] | None]  # metric, current, holdout, drop
    performance_by_day: NotRequired[list[dict[str, Any]] | None]  # per event day: day, value


class AlertDelivery(TypedDict):
    """``send_alerts``: which alerts went out and which wait for the next run."""

    delivered: list[str]
    pending: list[str]
    slack_configured: bool


class RetrainTrigger(TypedDict):
    """``decide_retrain`` (when it triggers): what the training run is started with."""

    at: str
    reference_version: str
    drift_run_id: str
    reason: str
    day: str
    training_run_id: str  # the run the trigger creates; a claim whose run never appeared did not happen


@dataclass(frozen=True)
class ResultLink:
    """A task button in the Airflow UI: it opens the lake URI or URL in ``key`` of a task result."""

    name: str
    key: str
    producers: dict[str, type]  # task id -> the result type that task returns


RESULT_LINKS: tuple[ResultLink, ...] = (
    ResultLink("GX Data Docs", "data_docs_uri", {"validate_batch": ValidationSummary}),
    ResultLink(
        "MLflow run", "mlflow_run_url", {"train_model": TrainedModel, "evaluate_and_promote": PromotionRecord}
    ),
    ResultLink("Evidently report", "report_uri", {"check_drift": DriftCheckResult}),
)
