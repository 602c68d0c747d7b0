"""Use cases as configuration: one YAML file per use case under ``config/use_cases/``.

A use case declares its source, schema, expectations, features, model, split, promotion gate,
scoring, drift rules and schedules. Everything is validated on load; a bad file raises
:class:`ConfigError` naming the file, the key and the problem, and only that use case is lost.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
# Feature names become column names in the feature store (PostgreSQL identifiers: at most 63 bytes).
FEATURE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
COLUMN_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Columns the platform itself writes next to the features (feature store, PostgreSQL store,
# scoring output, drift monitoring); a feature with one of these names would clash with them.
RESERVED_FEATURE_NAMES = frozenset(
    {
        "entity_id",
        "event_time",
        "label",
        "label_available_at",
        "interval",
        "prediction_value",
        "score",
        "prediction",
        "predicted_label",  # mlops.model.threshold.PREDICTED_LABEL
        "model_version",
        "model_run_id",
    }
)
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Schedule presets Airflow accepts as a DAG's ``schedule``; anything else must be a 5-field cron.
SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
)
NOT_CRON_PRESETS = frozenset({"@once", "@continuous"})
ColumnType = Literal["int", "float", "str", "category", "datetime", "bool"]
ESTIMATOR_MODULES = frozenset(
    {
        "sklearn.ensemble",
        "sklearn.linear_model",
        "sklearn.tree",
        "sklearn.neighbors",
        "sklearn.svm",
        "sklearn.naive_bayes",
    }
)


class ConfigError(ValueError):
    """A use-case file is invalid; the message names the file, the key and the problem."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


def _cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron expression Airflow can schedule, or None if it is.

    Parsed with croniter, the library Airflow's cron timetables use (Airflow's own check is
    ``croniter(expression)``), without importing Airflow: configs are loaded at DAG parse time.
    """
    from croniter import CroniterBadDateError, croniter

    fields = expression.split()
    if len(fields) != 5:
        return (
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"this one has {len(fields)}"
        )
    try:
        cron = croniter(expression, dt.datetime(2000, 1, 1))
    except (ValueError, TypeError, KeyError) as exc:  # croniter's errors are ValueErrors
        return str(exc) or type(exc).__name__
    try:
        cron.get_next(dt.datetime)
    except CroniterBadDateError:
        return "it never fires (no such day, e.g. 30 February)"
    return None


def _check_schedule(value: str | None) -> str | None:
    if value is None or value in SCHEDULE_PRESETS:
        return value
    problem = _cron_problem(value)
    if problem:
        raise ValueError(
            f"{value!r} is not a valid schedule: {problem}; use null (no schedule), one of "
            f"{', '.join(SCHEDULE_PRESETS)}, or a 5-field cron expression such as '0 6 * * *'"
        )
    return value


Schedule = Annotated[str | None, AfterValidator(_check_schedule)]


def _check_iso_date(value: Any) -> Any:
    example = "write it as YYYY-MM-DD, e.g. '2026-01-01'"
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value.isoformat()!r} has a time of day; a date is expected, {example}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and ISO_DATE_RE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid date ({exc}); {example}") from None
    raise ValueError(f"{value!r} is not a date; {example}")


IsoDate = Annotated[dt.date, BeforeValidator(_check_iso_date)]


def cron_for(schedule: str) -> str:
    """The cron expression for a schedule preset (``@daily`` -> ``0 0 * * *``); a cron string as is.

    Uses Airflow's own preset table, so a ``CronTriggerTimetable(cron_for(s))`` fires exactly when
    ``schedule=s`` would. ``@once`` and ``@continuous`` are not time-based and raise ValueError.
    """
    if schedule in NOT_CRON_PRESETS:
        raise ValueError(
            f"schedule {schedule!r} has no cron expression: it is not time-based; "
            f"use a cron preset such as '@daily' or a 5-field cron expression"
        )
    if not schedule.startswith("@"):
        return schedule
    try:  # the table airflow.sdk's cron timetables apply; present wherever DAGs are parsed
        from airflow.sdk.definitions.timetables._cron import CRON_PRESETS as presets
    except ImportError:  # pragma: no cover - older layouts keep it in core only
        from airflow.utils.dates import cron_presets as presets
    # Airflow's table has no @annually (croniter reads it as @yearly).
    preset = "@yearly" if schedule == "@annually" else schedule
    if preset not in presets:
        raise ValueError(f"unknown schedule preset {schedule!r}; use one of {', '.join(sorted(presets))}")
    return presets[preset]


def _require_identifier(pattern: re.Pattern[str], name: str, what: str, letters: str, fix: str) -> None:
    """Raise naming ``what`` and the fix unless ``name`` is a safe SQL/Parquet identifier."""
    if not pattern.match(name):
        raise ValueError(
            f"{what} {name!r} must be 1-63 {letters}, digits or underscores, starting with a letter or "
            f"underscore (no spaces, dashes or quotes); {fix}"
        )


def _suggest_identifier(name: str) -> str:
    suggestion = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "feature"
    if suggestion[0].isdigit():
        suggestion = f"f_{suggestion}"
    return suggestion[:63]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    type: ColumnType
    # The column's header in a delivery when it is not its name ("mean radius"). A delivery may
    # carry either; parsing renames the source to the name, so all after parsing sees the name.
    source: str | None = Field(default=None, min_length=1, max_length=255)
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    # Severity of the value checks (range, category set, nulls) for this column.
    severity: Literal["error", "warning"] = "error"

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\r\n")):
            raise ValueError(f"source {value!r} must be a delivery's header: some text on one line")
        return value

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        if self.type == "category" and not self.values:
            raise ValueError("a 'category' column needs 'values'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class SourceSpec(_Strict):
    kind: Literal["files", "sql"] = "files"
    format: Literal["csv", "parquet"] = "csv"
    # Files: a URI template; {landing} is MLOPS_LANDING_URI, {interval} the day (YYYY-MM-DD).
    uri: str | None = None
    # SQL: a query through an Airflow connection; {interval_start}/{interval_end} are filled in.
    conn_id: str | None = None
    query: str | None = None
    # What a missing batch does: fail at once, or wait (sensor) up to wait_timeout_minutes.
    on_missing: Literal["fail", "wait"] = "fail"
    wait_timeout_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # A CSV delivery larger than this is validated in partitions of about this size, one mapped
    # task each (memory per task stays flat, workers share a day); 0: never split.
    partition_mb: float = Field(default=32, ge=0, le=4096)

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        if self.kind == "files" and not self.uri:
            raise ValueError("a 'files' source needs 'uri'")
        if self.kind == "files" and self.uri and "{interval}" not in self.uri:
            raise ValueError("'uri' must contain {interval}")
        if self.kind == "sql" and not (self.conn_id and self.query):
            raise ValueError("a 'sql' source needs 'conn_id' and 'query'")
        return self


def _check_columns(columns: dict[str, ColumnSpec], **roles: str | None) -> None:
    """Each named role (entity, event_time, ...) is a declared column; keys and times have their types."""
    for key, col in roles.items():
        if col is not None and col not in columns:
            raise ValueError(f"{key} column {col!r} is not declared in 'columns'")
    event_time, entity = roles.get("event_time"), roles.get("entity")
    if event_time is not None and columns[event_time].type != "datetime":
        raise ValueError(f"event_time column {event_time!r} must have type 'datetime'")
    if entity is not None and columns[entity].type not in ("int", "str"):
        raise ValueError(
            f"entity column {entity!r} has type {columns[entity].type!r}; an entity key is "
            "'int' (numeric ids) or 'str' (UUIDs, codes: kept exactly as delivered, leading zeros too)"
        )


def _column_names(value: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
    for name in value:
        _require_identifier(
            COLUMN_NAME_RE,
            name,
            "column name",
            "letters",
            f"rename the column, e.g. {_suggest_identifier(name)!r}"
            + (
                f", and give it the delivery's header as source ({{type: ..., source: {name!r}}})"
                if name.strip()
                else ""
            ),
        )
    return value


def _column_sources(value: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
    """Each delivery header names one column: no two columns share a source, and no source is
    another column's name (a delivery may carry a column under its name instead of its source,
    so such a header could be either column)."""
    by_source: dict[str, str] = {}
    for name, col in value.items():
        if col.source is None:
            continue
        if col.source in by_source:
            raise ValueError(
                f"columns {by_source[col.source]!r} and {name!r} both have source {col.source!r}; "
                "a delivery header feeds one column: give one of them its own source"
            )
        by_source[col.source] = name
        if col.source != name and col.source in value:
            raise ValueError(
                f"column {name!r} has source {col.source!r}, which is the name of column {col.source!r}: "
                f"a header {col.source!r} in a delivery could be either column; rename column "
                f"{col.source!r} (a delivery may carry a column under its own name) or correct the source of {name!r}"
            )
    return value


# Declared columns of a feed: names that are safe as Parquet and PostgreSQL column names, each
# fed by one delivery header (its source, or its name).
Columns = Annotated[dict[str, ColumnSpec], AfterValidator(_column_names), AfterValidator(_column_sources)]


class SchemaSpec(_Strict):
    """The scoring feed: the rows the model sees, keyed by entity and event time.

    ``target`` names a label column shipped in the same rows (labels known ``label_delay_days``
    after the event); leave it out when labels come from their own feed (``labels:``).
    """

    entity: str
    event_time: str
    target: str | None = None
    # Labels in the batch become known this many days after the event (point-in-time training uses only known ones).
    label_delay_days: int = Field(default=0, ge=0, le=365)
    columns: Columns

    @model_validator(mode="after")
    def _check(self) -> SchemaSpec:
        _check_columns(self.columns, entity=self.entity, event_time=self.event_time, target=self.target)
        return self


class ExpectationsSpec(_Strict):
    min_rows: int = Field(default=1, ge=1)
    max_rows: int | None = None
    # Rows whose event time lies outside the batch's day by more than this (or after the run
    # started) fail the gate's event-time check and the batch is quarantined.
    event_time_tolerance_hours: float = Field(default=0, ge=0, le=24 * 366)


class LabelExpectationsSpec(ExpectationsSpec):
    """A label feed's expectations. A day on which no label arrived is a valid delivery (a header,
    no rows: zero labels stored) unless ``min_rows`` asks for more."""

    min_rows: int = Field(default=0, ge=0)


class LabelFeedSpec(_Strict):
    """Labels delivered by their own upstream system, days after the events they refer to.

    The file (or query result) for day D holds the labels delivered on D: the entity, the time of
    the event the label refers to, and the label. They count as known from the end of D.
    """

    source: SourceSpec
    entity: str
    event_time: str
    label: str
    columns: Columns
    expectations: LabelExpectationsSpec = Field(default_factory=LabelExpectationsSpec)
    # A label may refer to an event at most this many days before its delivery.
    max_delay_days: int = Field(default=90, ge=1, le=730)

    @model_validator(mode="after")
    def _check(self) -> LabelFeedSpec:
        _check_columns(self.columns, entity=self.entity, event_time=self.event_time, label=self.label)
        if self.columns[self.label].type not in ("int", "float", "bool"):
            raise ValueError(f"label column {self.label!r} must be numeric ('int', 'float' or 'bool')")
        return self


FeatureTransform = Literal[
    "passthrough", "log1p", "ratio", "category", "clip", "hour_of_day", "day_of_week", "code"
]


class FeatureSpec(_Strict):
    name: str
    transform: FeatureTransform
    inputs: list[str]
    # clip bounds
    lower: float | None = None
    upper: float | None = None
    # transform "code": a function of the team's feature repository (mlops.core.feature_repo)
    function: str | None = None
    dtype: Literal["numeric", "category"] = "numeric"
    _code_version: str | None = PrivateAttr(default=None)

    @property
    def categorical(self) -> bool:
        return self.transform == "category" or (self.transform == "code" and self.dtype == "category")

    @property
    def code_version(self) -> str | None:
        """The hash of the feature function's file (transform ``code``), checked at load."""
        return self._code_version

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        _require_identifier(
            FEATURE_NAME_RE,
            value,
            "feature name",
            "lowercase letters",
            f"it becomes a column name; e.g. {_suggest_identifier(value)!r}",
        )
        if value in RESERVED_FEATURE_NAMES:
            raise ValueError(
                f"feature name {value!r} is reserved: the platform writes its own column of that name "
                f"(reserved: {', '.join(sorted(RESERVED_FEATURE_NAMES))}); rename the feature, "
                f"e.g. {value + '_feature'!r}"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> FeatureSpec:
        if self.transform == "code":
            if not self.function:
                raise ValueError(
                    "transform 'code' needs 'function: <file>.<function>' from the feature repository"
                )
            if not self.inputs:
                raise ValueError("transform 'code' needs 'inputs': the batch columns the function reads")
            from mlops.core.feature_repo import check_function

            self._code_version = check_function(self.function)
            return self
        if self.function is not None:
            raise ValueError(f"'function' is only for transform 'code', not {self.transform!r}")
        arity = {"ratio": 2}.get(self.transform, 1)
        if len(self.inputs) != arity:
            raise ValueError(f"transform {self.transform!r} takes {arity} input(s), got {len(self.inputs)}")
        return self


def _estimator_known(value: str) -> str:
    # Checked without importing scikit-learn: configs are loaded at DAG parse time.
    module, _, name = value.rpartition(".")
    if module not in ESTIMATOR_MODULES or not name.isidentifier() or not name[0].isupper():
        raise ValueError(
            f"estimator {value!r} must be a scikit-learn class in one of {sorted(ESTIMATOR_MODULES)}"
        )
    return value


class ParamRange(_Strict):
    """One hyperparameter's search range: a list of ``values``, or ``low``..``high`` (``log``, ``integer``)."""

    values: list[Any] | None = Field(default=None, min_length=1)
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> ParamRange:
        if (self.values is None) == (self.low is None or self.high is None):
            raise ValueError("give either 'values' or both 'low' and 'high'")
        if self.low is not None and self.high is not None:
            if self.low >= self.high:
                raise ValueError(f"low {self.low} must be below high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
        return self


class CandidateSpec(_Strict):
    """A candidate model besides the configured one: another estimator and/or hyperparameters."""

    estimator: Annotated[str, AfterValidator(_estimator_known)]
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class SearchSpec(_Strict):
    """Candidate search: explicit candidates, then samples of ``space`` until ``budget`` candidates.

    The configured model is always candidate 0. Each candidate is fitted on the training split by
    its own (mapped) task; the best on the validation split by the gate's metric is registered
    and goes through the gate on the holdout. Deterministic for ``model.seed``.
    """

    candidates: list[CandidateSpec] = Field(default_factory=list)
    space: dict[str, ParamRange] = Field(default_factory=dict)  # over the configured estimator
    sampler: Literal["random", "grid"] = "random"
    budget: int = Field(default=8, ge=1, le=200)

    @model_validator(mode="after")
    def _grid_needs_values(self) -> SearchSpec:
        if self.sampler == "grid":
            ranged = [k for k, r in self.space.items() if r.values is None]
            if ranged:
                raise ValueError(
                    f"a grid needs 'values' for every parameter; {', '.join(ranged)} give a range"
                )
        return self


ThresholdObjective = Literal["f1", "precision_at_recall", "cost"]


class ErrorCostSpec(_Strict):
    """What one wrong label costs, in any unit shared by both (e.g. euros, hours of work)."""

    false_positive: float = Field(gt=0)
    false_negative: float = Field(gt=0)


class DecisionThresholdSpec(_Strict):
    """How a classifier's decision threshold is chosen on the validation split (mlops.model.threshold).

    A row whose score is at or above the threshold is labelled positive. ``f1``: the best F1;
    ``precision_at_recall``: the best precision among thresholds with recall >= ``min_recall``;
    ``cost``: the least ``false_positive`` x FP + ``false_negative`` x FN. Ties go to the
    threshold closest to 0.5.
    """

    objective: ThresholdObjective = "f1"
    min_recall: float | None = Field(default=None, gt=0, le=1)
    cost: ErrorCostSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> DecisionThresholdSpec:
        if self.objective == "precision_at_recall" and self.min_recall is None:
            raise ValueError(
                "objective 'precision_at_recall' needs 'min_recall': the least recall to keep, e.g. 0.5"
            )
        if self.objective == "cost" and self.cost is None:
            raise ValueError(
                "objective 'cost' needs 'cost: {false_positive: <x>, false_negative: <y>}': "
                "what each kind of error costs"
            )
        if self.min_recall is not None and self.objective != "precision_at_recall":
            raise ValueError(
                f"'min_recall' is only for objective 'precision_at_recall', not {self.objective!r}"
            )
        if self.cost is not None and self.objective != "cost":
            raise ValueError(f"'cost' is only for objective 'cost', not {self.objective!r}")
        return self


class ModelSpec(_Strict):
    estimator: Annotated[str, AfterValidator(_estimator_known)]
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    search: SearchSpec | None = None
    # Classification only; left out, the threshold is chosen for the best F1 (UseCase.decision_threshold).
    threshold: DecisionThresholdSpec | None = None


class SplitSpec(_Strict):
    strategy: Literal["time", "random"] = "time"
    validation: float = Field(default=0.15, gt=0, lt=0.5)
    holdout: float = Field(default=0.15, gt=0, lt=0.5)


class TrainingSpec(_Strict):
    window_days: int = Field(default=28, ge=1)
    schedule: Schedule = None
    on_new_features: bool = False

    @model_validator(mode="after")
    def _check(self) -> TrainingSpec:
        # With on_new_features the schedule becomes a CronTriggerTimetable, which needs a cron.
        if self.on_new_features and self.schedule in NOT_CRON_PRESETS:
            raise ValueError(
                f"schedule {self.schedule!r} cannot be combined with on_new_features: true; "
                f"use a cron preset such as '@weekly', a cron expression, or null"
            )
        return self


class ThresholdSpec(_Strict):
    min: float | None = None
    max: float | None = None


PromotionMode = Literal["auto", "approval", "dry_run", "disabled"]
# The modes from the loosest to the strictest. The configured mode is a floor: a run (the UI form,
# the REST API, the drift DAG's retrain) may ask for it or a stricter one, never a looser one.
PROMOTION_MODES: tuple[PromotionMode, ...] = ("auto", "approval", "dry_run", "disabled")


class PromotionModeRefused(ValueError):
    """A run asked for a promotion mode looser than its use case's (or one that does not exist)."""


class SliceSpec(_Strict):
    """A segment of the holdout the gate judges on its own rows (e.g. each plan, each weather).

    ``column`` is a column of the holdout (a feature: the holdout holds the features, the label and
    the keys). Without ``bins`` each distinct value is a slice; with ``bins`` (cut points of a numeric
    column) the slices are ``< b0``, ``[b0, b1)``, ..., ``>= bn``. A slice value with fewer than
    ``min_rows`` rows is reported as too small to judge. A ``blocking`` slice where the challenger is
    worse than the champion (or the baseline) beyond its bootstrap interval refuses the promotion;
    a non-blocking one is only reported.
    """

    column: str = Field(min_length=1, max_length=63)
    bins: list[float] | None = None
    min_rows: int = Field(default=30, ge=2)
    blocking: bool = False

    @field_validator("bins")
    @classmethod
    def _bins(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if not value:
                raise ValueError(
                    "'bins' needs at least one cut point (or leave it out for a categorical column)"
                )
            if any(v != v for v in value) or value != sorted(set(value)):  # NaN, unsorted or repeated
                raise ValueError(f"'bins' must be strictly increasing numbers, got {value}")
        return value


class PromotionSpec(_Strict):
    metric: str
    higher_is_better: bool = True
    thresholds: dict[str, ThresholdSpec] = Field(default_factory=dict)
    # The challenger must beat the champion by at least this much, with the confidence below.
    min_improvement: float = Field(default=0.0, ge=0)
    # ... and beat the trivial baseline (class prior / training mean, fitted on the same training
    # split) by more than this, with the same paired bootstrap: also for the first model.
    baseline_margin: float = Field(default=0.0, ge=0)
    # Segments judged on their own rows (see SliceSpec); one entry per column.
    slices: list[SliceSpec] = Field(default_factory=list)
    bootstrap_samples: int = Field(default=500, ge=50, le=10000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    # auto: a challenger that passes moves the champion alias; approval: it waits for a person
    # (Airflow's human-in-the-loop) for at most approval_timeout_hours, then counts as rejected.
    mode: PromotionMode = "auto"
    approval_timeout_hours: float = Field(default=72, gt=0, le=24 * 30)
    # Who may approve a promotion (Airflow user names); empty: any user allowed to act on the DAG.
    # Either way the user who triggered the run cannot approve it (four eyes).
    approvers: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list)

    @field_validator("slices")
    @classmethod
    def _one_entry_per_column(cls, value: list[SliceSpec]) -> list[SliceSpec]:
        seen: set[str] = set()
        for i, spec in enumerate(value):
            if spec.column in seen:
                raise ValueError(
                    f"slices[{i}]: column {spec.column!r} is declared twice; one entry per column"
                )
            seen.add(spec.column)
        return value

    def allowed_modes(self) -> list[PromotionMode]:
        """The modes a run may ask for: the configured one and every stricter one."""
        return list(PROMOTION_MODES[PROMOTION_MODES.index(self.mode) :])

    def run_mode(self, requested: str | None) -> PromotionMode:
        """The mode a run promotes with: the configured one, or the stricter one it asked for.

        Raises :class:`PromotionModeRefused` for a looser or unknown mode, naming what is allowed.
        """
        if not requested:
            return self.mode
        allowed = self.allowed_modes()
        for mode in allowed:
            if requested == mode:
                return mode
        if requested in PROMOTION_MODES:
            raise PromotionModeRefused(
                f"promotion mode {requested!r} is looser than the use case's {self.mode!r}: a run may only "
                f"make promotion stricter ({', '.join(allowed)}); change promotion.mode in the use case to loosen it"
            )
        raise PromotionModeRefused(f"unknown promotion mode {requested!r}; one of {', '.join(allowed)}")


class ScoringSpec(_Strict):
    chunk_rows: int = Field(default=200_000, ge=1000)
    # Write a contrib_<feature> column per feature beside each score (mlops.model.explain): one
    # extra prediction per feature, so scoring takes about (features + 1) times as long.
    explain: bool = False


class DriftSpec(_Strict):
    schedule: Schedule = "@daily"
    window_days: int = Field(default=1, ge=1, le=90)
    sample_size: int = Field(default=20_000, ge=500)
    seed: int = 7
    # Dataset drift when at least this share of features drift (Evidently's drift_share).
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # Per-column statistical test (Evidently stattest names); others use Evidently's defaults.
    stattests: dict[str, str] = Field(default_factory=dict)
    # Alert when one of these features drifts, even below the dataset drift share.
    critical_features: list[str] = Field(default_factory=list)
    # Alert when the prediction distribution drifts.
    alert_on_prediction_drift: bool = True
    # Alert when the champion's metric on newly labelled rows drops this much below its holdout value.
    max_performance_drop: float | None = 0.05
    # Live performance is measured on the predictions of this many days up to the checked day
    # whose labels have arrived, per day and overall, once at least min_labelled_rows are known.
    performance_days: int = Field(default=14, ge=1, le=365)
    # The training window of a retrain that drift triggers (None: training.window_days): after a
    # change in the data, learn from the days since.
    retrain_window_days: int | None = Field(default=None, ge=1, le=730)
    min_labelled_rows: int = Field(default=50, ge=10)
    cooldown_hours: float = Field(default=24, ge=0)


class SchedulesSpec(_Strict):
    data: Schedule = "@daily"
    # A date (YYYY-MM-DD); the DAGs start at midnight UTC on that day.
    start_date: IsoDate = Field(default=dt.date(2026, 1, 1), strict=True)
    catchup: bool = False
    # Why this use case's DAGs start paused (e.g. its upstream feed is not connected yet); shown
    # in each DAG's documentation. Unset: the DAGs follow Airflow's paused-at-creation setting.
    paused_reason: str | None = Field(default=None, max_length=500)

    @field_validator("data")
    @classmethod
    def _data_not_continuous(cls, value: str | None) -> str | None:
        # The data DAG runs several intervals at once; Airflow allows @continuous only with one.
        if value == "@continuous":
            raise ValueError(
                "'@continuous' is not allowed for the data DAG (it runs several intervals at once); "
                "use '@daily' or a cron expression"
            )
        return value


FeedKind = Literal["batch", "labels"]


@dataclass(frozen=True)
class Feed:
    """One upstream feed of a use case as the data tasks see it: the scoring batches, or the labels.

    ``stream`` names it in the lake and in ``config/expectations/``: the use case's name for its
    batches, ``<use case>.labels`` for its label feed (a dot never occurs in a use-case name).
    """

    use_case: str
    kind: FeedKind
    source: SourceSpec
    columns: dict[str, ColumnSpec]
    entity: str
    event_time: str
    expectations: ExpectationsSpec
    # How far before its day an event may lie: the lateness tolerance of a batch, or a label's delay.
    days_before: int = 0

    @property
    def stream(self) -> str:
        return self.use_case if self.kind == "batch" else f"{self.use_case}.labels"


class UseCase(_Strict):
    name: str
    description: str
    owner: str = "ml-platform"
    task: Literal["classification", "regression"]
    source: SourceSpec
    schema_: SchemaSpec = Field(alias="schema")
    labels: LabelFeedSpec | None = None
    expectations: ExpectationsSpec = Field(default_factory=ExpectationsSpec)
    features: list[FeatureSpec]
    model: ModelSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    promotion: PromotionSpec
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    schedules: SchedulesSpec = Field(default_factory=SchedulesSpec)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"{value!r} must be lower_snake_case, 2-41 characters")
        return value

    @model_validator(mode="after")
    def _cross_check(self) -> UseCase:
        cols = self.schema_.columns
        names = set()
        own_columns = {
            key: getattr(self.schema_, key)
            for key in ("entity", "event_time", "target")
            if getattr(self.schema_, key)
        }
        if (self.schema_.target is None) == (self.labels is None):
            raise ValueError(
                "schema.target: declare where labels come from: either schema.target (a label column in the "
                "batch) or a 'labels:' feed of their own, not both and not neither"
            )
        if self.labels is not None:
            label_key = self.labels.columns[self.labels.entity].type
            if label_key != self.schema_.columns[self.schema_.entity].type:
                raise ValueError(
                    f"labels.entity: column {self.labels.entity!r} has type {label_key!r} but the batch's entity "
                    f"{self.schema_.entity!r} is {self.schema_.columns[self.schema_.entity].type!r}; keys must match"
                )
            if (
                self.source.kind == "files"
                and self.labels.source.kind == "files"
                and self.labels.source.uri == self.source.uri
            ):
                raise ValueError("labels.source.uri: the label feed must land apart from the batches")
        for i, feat in enumerate(self.features):
            if feat.name in names:
                raise ValueError(f"features[{i}]: duplicate feature name {feat.name!r}")
            names.add(feat.name)
            for key, col in own_columns.items():
                if feat.name == col:
                    raise ValueError(
                        f"features[{i}].name: {feat.name!r} is the schema.{key} column and cannot also be "
                        f"a feature name; rename the feature, e.g. {feat.name + '_feature'!r}"
                    )
            for col in feat.inputs:
                if col not in cols:
                    raise ValueError(
                        f"features[{i}] ({feat.name}): input column {col!r} is not in schema.columns"
                    )
                if col == self.schema_.target:
                    raise ValueError(
                        f"features[{i}] ({feat.name}): the target {col!r} cannot be a feature input"
                    )
        for feat_name in self.drift.critical_features:
            if feat_name not in names:
                raise ValueError(f"drift.critical_features: {feat_name!r} is not a feature")
        if self.task != "classification" and self.model.threshold is not None:
            raise ValueError(
                f"model.threshold: a decision threshold turns a classifier's score into a label; task "
                f"{self.task!r} predicts a value, so remove 'threshold' from 'model'"
            )
        return self

    # Names used across the platform -------------------------------------------------------
    def feed(self, kind: FeedKind = "batch") -> Feed:
        """The batch feed, or the label feed (a ConfigError-free KeyError if the use case has none)."""
        if kind == "batch":
            schema = self.schema_
            return Feed(
                self.name,
                "batch",
                self.source,
                schema.columns,
                schema.entity,
                schema.event_time,
                self.expectations,
            )
        if self.labels is None:
            raise KeyError(
                f"use case {self.name!r} has no label feed: its labels are the column {self.schema_.target!r} of each batch"
            )
        spec = self.labels
        return Feed(
            self.name,
            "labels",
            spec.source,
            spec.columns,
            spec.entity,
            spec.event_time,
            spec.expectations,
            spec.max_delay_days,
        )

    @property
    def feeds(self) -> list[Feed]:
        return [self.feed("batch")] + ([self.feed("labels")] if self.labels is not None else [])

    @property
    def decision_threshold(self) -> DecisionThresholdSpec | None:
        """How the decision threshold is chosen: the configured way, else the best F1 (None: regression)."""
        if self.task != "classification":
            return None
        return self.model.threshold or DecisionThresholdSpec()

    @property
    def registered_model_name(self) -> str:
        return f"{self.name}_model"

    @property
    def catch_up_days(self) -> int:
        """How many days up to its last day a scoring run looks back for committed feature days that
        have no predictions (those that came before the first champion): the days the drift DAG
        reads predictions of, its window and its live-performance days."""
        return max(self.drift.window_days, self.drift.performance_days)

    @property
    def experiment_name(self) -> str:
        return f"mlops/{self.name}"

    def dag_id(self, kind: str) -> str:
        return f"{self.name}_{kind}"

    @property
    def entity_type(self) -> Literal["int", "str"]:
        """The declared type of the entity key: it is kept through features, labels and predictions."""
        return "int" if self.schema_.columns[self.schema_.entity].type == "int" else "str"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.categorical]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if not f.categorical]

    @property
    def feature_version(self) -> str:
        """One hash of every feature's definition and code: a partition built otherwise is stale."""
        import hashlib
        import json

        definition = [f.model_dump(mode="json") | {"code_version": f.code_version} for f in self.features]
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def _key_of(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def parse_use_case(raw: Any, path: Path | str) -> UseCase:
    """Validate one parsed YAML document; raise ConfigError naming the key on failure."""
    if not isinstance(raw, dict):
        raise ConfigError(path, "(top level)", "expected a mapping of settings")
    try:
        use_case = UseCase.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key, msg = _key_of(err["loc"]), str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a cross-field check: its message starts with the key it is about
            match = re.match(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)*)[ :]", msg)
            if match:
                key = match.group(1)
                msg = msg.removeprefix(f"{key}: ")  # the key is already in front of the message
        raise ConfigError(path, key, msg) from None
    stem = Path(path).stem
    if use_case.name != stem:
        raise ConfigError(path, "name", f"{use_case.name!r} must match the file name {stem!r}")
    return use_case


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader, except dates stay strings: ``parse_use_case`` validates them, so a bad
    unquoted date (``2026-13-01``) is reported with its key instead of failing inside YAML."""


def _timestamp_as_text(loader: _ConfigLoader, node: yaml.Node) -> str:
    return str(node.value)


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_use_case_file(path: Path) -> UseCase:
    try:
        raw = yaml.load(path.read_text(), Loader=_ConfigLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(path, "(yaml)", str(exc).replace("\n", " ")) from None
    return parse_use_case(raw, path)


def load_use_cases(config_dir: Path) -> tuple[dict[str, UseCase], dict[str, ConfigError]]:
    """Load every ``use_cases/*.yaml``; return the valid ones and the errors, each by file stem."""
    good: dict[str, UseCase] = {}
    bad: dict[str, ConfigError] = {}
    for path in sorted((config_dir / "use_cases").glob("*.yaml")):
        try:
            good[path.stem] = load_use_case_file(path)
        except ConfigError as exc:
            bad[path.stem] = exc
    return good, bad


def get_use_case(name: str, config_dir: Path | None = None) -> UseCase:
    """Load one use case by name (used inside tasks)."""
    if config_dir is None:
        from mlops.core.settings import load_settings

        config_dir = load_settings().config_dir
    path = config_dir / "use_cases" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(path, "(file)", f"no use case named {name!r}")
    return load_use_case_file(path)
