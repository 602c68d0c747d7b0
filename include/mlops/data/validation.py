"""The validation gate: a Great Expectations 1.x suite per use case, derived from its config.

The suite is generated from the config (``python -m mlops suites``) and stored as JSON under
``config/expectations/<use_case>.json``; the gate validates each batch against the stored suite.
Expectations carry ``meta.severity``: ``error`` blocks the batch, ``warning`` is reported only.
Great Expectations is imported inside the functions: it costs seconds to import. A delivery's
bytes become the frame checked here in ``mlops.data.parsing``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops.core.results import ValidationSummary

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import Feed, UseCase

TYPE_LISTS: dict[str, list[str]] = {
    "int": ["int64", "int32", "int16", "int8", "Int64", "Int32"],
    "float": ["float64", "float32", "Float64", "int64", "int32", "Int64"],
    "str": ["object", "str", "string", "StringDtype"],
    "category": ["object", "str", "string", "StringDtype", "category"],
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "datetime64"],
    "bool": ["bool", "boolean"],
}


# The event-time check: its bounds are parameters of the stored suite, set per batch.
EVENT_TIME_CHECK = "event_time_in_interval"
EVENT_TIME_MIN = "event_time_min"
EVENT_TIME_MAX = "event_time_max"


def suite_path(config_dir: Path, use_case: str) -> Path:
    return config_dir / "expectations" / f"{use_case}.json"


def derive_suite(use_case: UseCase | Feed) -> dict[str, Any]:
    """The expectation suite (GX 1.x JSON form) that the config of a feed implies (a use case: its batches)."""
    from mlops.data.ingest import as_feed

    schema = as_feed(use_case)
    exps: list[dict[str, Any]] = []

    def add(kind: str, severity: str = "error", **kwargs: Any) -> None:
        exps.append({"type": kind, "kwargs": kwargs, "meta": {"severity": severity}})

    add(
        "expect_table_row_count_to_be_between",
        min_value=schema.expectations.min_rows,
        max_value=schema.expectations.max_rows,
    )
    add("expect_table_columns_to_match_set", column_set=list(schema.columns), exact_match=True)
    add("expect_compound_columns_to_be_unique", column_list=[schema.entity, schema.event_time])
    exps.append(
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {
                "column": schema.event_time,
                "min_value": {"$PARAMETER": EVENT_TIME_MIN},
                "max_value": {"$PARAMETER": EVENT_TIME_MAX},
                "strict_max": True,
            },
            "meta": {"severity": "error", "check": EVENT_TIME_CHECK},
        }
    )
    for name, col in schema.columns.items():
        # A column delivered under another header (its source) is renamed on parsing; the header
        # goes with the check, so that a missing column is reported by the header expected.
        exists = {"severity": "error"} | ({"header": col.source} if col.source not in (None, name) else {})
        exps.append({"type": "expect_column_to_exist", "kwargs": {"column": name}, "meta": exists})
        add("expect_column_values_to_be_in_type_list", column=name, type_list=TYPE_LISTS[col.type])
        if not col.nullable:
            add("expect_column_values_to_not_be_null", col.severity, column=name)
        if col.min is not None or col.max is not None:
            add(
                "expect_column_values_to_be_between",
                col.severity,
                column=name,
                min_value=col.min,
                max_value=col.max,
            )
        if col.values:
            add("expect_column_values_to_be_in_set", col.severity, column=name, value_set=list(col.values))
    section = "schema" if schema.kind == "batch" else "labels"
    return {
        "name": f"{schema.use_case}_{schema.kind}",
        "expectations": exps,
        "meta": {
            "derived_from": f"use_cases/{schema.use_case}.yaml"
            + ("" if section == "schema" else f" ({section})")
        },
    }


def load_suite(config_dir: Path, use_case: UseCase | Feed) -> dict[str, Any]:
    from mlops.data.ingest import as_feed

    feed = as_feed(use_case)
    path = suite_path(config_dir, feed.stream)
    if not path.exists():
        raise FileNotFoundError(
            f"use case {feed.use_case!r}: expectation suite {path} is missing; run `python -m mlops suites`"
        )
    return json.loads(path.read_text())


@dataclass
class Failure:
    expectation: str
    column: str | None
    severity: str
    unexpected_count: int | None
    unexpected_percent: float | None
    observed: Any = None
    exception: str | None = None
    check: str | None = None  # the platform's name for the check, where it has one
    header: str | None = None  # the column's header in a delivery (its source), if not its name

    def describe(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        if self.expectation == "expect_column_to_exist" and not self.exception:
            missing = (
                f"the delivery has no header {self.header!r} (the source of column {self.column!r}) "
                f"and no column {self.column!r}"
                if self.header
                else f"the delivery has no column {self.column!r}"
            )
            return f"[{self.severity}] {self.expectation}{where}: {missing}"
        if self.check == EVENT_TIME_CHECK and isinstance(self.observed, dict) and not self.exception:
            pct = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            seen, allowed = self.observed["seen"], self.observed["allowed"]
            return (
                f"[{self.severity}] {EVENT_TIME_CHECK}{where}: {self.unexpected_count} rows{pct} have an event time "
                f"outside the batch's day: seen {seen[0]} .. {seen[1]}, allowed {allowed[0]} .. before {allowed[1]} "
                f"(expectation {self.expectation})"
            )
        if self.exception:
            detail = f"could not be evaluated: {self.exception}"
        elif self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            detail = f"{self.unexpected_count} unexpected values{pct}"
        else:
            detail = f"observed {self.observed!r}"
        return f"[{self.severity}] {self.expectation}{where}: {detail}"


@dataclass
class ValidationOutcome:
    passed: bool
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    reason: str | None = None
    result: dict[str, Any] | None = None
    data_docs_html: str | None = None

    @property
    def errors(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "error"]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "warning"]

    def summary(self, *, use_case: str, interval: str, sha256: str) -> ValidationSummary:
        """The gate's verdict on one archived batch (identified by its content hash)."""
        return ValidationSummary(
            passed=self.passed,
            rows=self.rows,
            expectations_evaluated=self.evaluated,
            reason=self.reason,
            errors=[asdict(f) | {"text": f.describe()} for f in self.errors],
            warnings=[asdict(f) | {"text": f.describe()} for f in self.warnings],
            use_case=use_case,
            interval=interval,
            sha256=sha256,
        )


def unreadable_outcome(reason: str) -> ValidationOutcome:
    failure = Failure("batch_is_readable", None, "error", None, None, exception=reason)
    return ValidationOutcome(passed=False, rows=0, evaluated=0, failures=[failure], reason=reason)


def event_time_window(
    day: dt.date, tolerance_hours: float, as_of: dt.datetime, *, days_before: int = 0
) -> dict[str, Any]:
    """The suite parameters of the event-time check for a delivery of ``day``.

    Rows may lie ``tolerance_hours`` before or after the day (a label feed: up to ``days_before``
    days before it, the events its labels refer to), and never after ``as_of`` (when the run
    started): an event from the future is a broken clock or a broken upstream.
    """
    import pandas as pd

    slack = dt.timedelta(hours=tolerance_hours)
    start = dt.datetime.combine(day - dt.timedelta(days=days_before), dt.time()) - slack
    end = min(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) + slack,
        as_of.astimezone(dt.UTC).replace(tzinfo=None),
    )
    return {EVENT_TIME_MIN: pd.Timestamp(start), EVENT_TIME_MAX: pd.Timestamp(end)}


def _validate(
    frame: pd.DataFrame,
    suite: dict[str, Any],
    parameters: dict[str, Any],
    result_format: Literal["BOOLEAN_ONLY", "SUMMARY"],
) -> dict[str, Any]:
    """The suite validated on ``frame`` as a batch of an ephemeral context: the validation result
    (JSON form). The batch is validated directly: a checkpoint would add nothing here (no actions)
    but its bookkeeping, a tenth of a second per partition."""
    import logging

    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # GX fingerprints every in-memory batch under 1 GB with an MD5 of pandas' row hashes, a full
    # pass over the data that nothing here reads: a batch is identified by the SHA-256 of its raw
    # bytes (the archive). Frames at or above this threshold are never fingerprinted by GX.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    batch = (
        context.data_sources.add_pandas("batches")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    started = dt.datetime.now(dt.UTC).isoformat()
    gx_suite = gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"])
    result = dict(
        batch.validate(
            gx_suite, expectation_parameters=parameters, result_format=result_format
        ).to_json_dict()
    )
    result["meta"] = {
        **result.get("meta", {}),
        "run_id": {"run_name": suite["name"], "run_time": started},
        "validation_time": started,
    }
    return result


def evaluate(
    frame: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The suite's validation result on ``frame`` (GX's JSON form).

    Two passes, so that a good batch pays only for the verdict: the first collects pass/fail per
    expectation (result format ``BOOLEAN_ONLY``); only when an expectation fails is the batch
    evaluated again with ``SUMMARY``, which collects what the report shows of a failure
    (unexpected counts and percentages, observed values, sample values).
    """
    result = _validate(frame, suite, parameters or {}, "BOOLEAN_ONLY")
    if not all(item["success"] for item in result["results"]):
        result = _validate(frame, suite, parameters or {}, "SUMMARY")
    return result


def render_data_docs(result: dict[str, Any]) -> str:
    """The Data Docs page of a validation result, rendered by GX's own page renderer (a tenth of a
    second; building a Data Docs site takes about one)."""
    from great_expectations.core.expectation_validation_result import expectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    document = ValidationResultsPageRenderer().render(expectationSuiteValidationResultSchema.load(result))
    return str(DefaultJinjaPageView().render(document))


def outcome_from_result(
    result: dict[str, Any],
    rows: int,
    *,
    parameters: dict[str, Any] | None = None,
    event_times_seen: tuple[str, str] | None = None,
) -> ValidationOutcome:
    """The gate's verdict from a validation result: failures by severity, and the reason in words."""
    failures = []
    for item in result["results"]:
        if item["success"]:
            continue
        cfg = item["expectation_config"]
        res = item.get("result") or {}
        exc = item.get("exception_info") or {}
        if "raised_exception" not in exc:  # keyed by metric when a metric could not be computed
            exc = next((v for v in exc.values() if isinstance(v, dict) and v.get("raised_exception")), {})
        failures.append(
            Failure(
                expectation=cfg["type"],
                column=cfg["kwargs"].get("column")
                or (",".join(cfg["kwargs"].get("column_list", [])) or None),
                severity=(cfg.get("meta") or {}).get("severity", "error"),
                unexpected_count=res.get("unexpected_count"),
                unexpected_percent=res.get("unexpected_percent"),
                observed=res.get("observed_value"),
                exception=exc.get("exception_message") if exc.get("raised_exception") else None,
                check=(cfg.get("meta") or {}).get("check"),
                header=(cfg.get("meta") or {}).get("header"),
            )
        )
        if failures[-1].check == EVENT_TIME_CHECK and failures[-1].exception is None and event_times_seen:
            failures[-1].observed = {
                "seen": list(event_times_seen),
                "allowed": [
                    str((parameters or {}).get(EVENT_TIME_MIN)),
                    str((parameters or {}).get(EVENT_TIME_MAX)),
                ],
            }
    passed = not any(f.severity == "error" for f in failures)
    reason = None if passed else "; ".join(f.describe() for f in failures if f.severity == "error")
    return ValidationOutcome(
        passed=passed,
        rows=rows,
        evaluated=len(result["results"]),
        failures=failures,
        reason=reason,
        result=result,
    )


def event_times_seen(frame: pd.DataFrame, suite: dict[str, Any]) -> tuple[str, str] | None:
    """The earliest and latest event time in ``frame`` (the column the event-time check names)."""
    column = next(
        (
            e["kwargs"]["column"]
            for e in suite["expectations"]
            if (e.get("meta") or {}).get("check") == EVENT_TIME_CHECK
        ),
        None,
    )
    if column is None or column not in frame or not len(frame):
        return None
    return str(frame[column].min()), str(frame[column].max())
