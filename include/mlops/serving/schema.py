"""What one prediction request may carry: rows of the use case's batch columns, checked one by one.

A request row is what the upstream system knows about an entity at the moment it asks: the
columns of the use case's batch (``schema.columns``) without the label. The rows are turned into
features by the same ``build_features`` that materializes batches for training and scoring, so
the model sees online exactly what it sees in a scored partition.

The checks are those the validation gate applies to a batch, per value: the declared type, no
null in a column that is not ``nullable``, ``min``/``max`` and the category ``values``, where the
column's ``severity`` is ``error`` (a ``warning`` column accepts the value, as the gate lets the
batch through). The entity key and the event time may never be null. A field the schema does not
declare is refused, the label included: it is not known when a prediction is asked for.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops.core.config import ColumnSpec, UseCase

# How many problems an error response lists; the count says how many there were in all.
MAX_LISTED_PROBLEMS = 20
EXAMPLE_TIME = "2026-01-05T14:30:00Z"
# Integers are stored as int64 (the batch columns' Arrow type): a value beyond it is refused.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the row (its index in ``rows``) and field it is about."""

    message: str
    row: int | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = [
            f"row {self.row}" if self.row is not None else "",
            f"field {self.field!r}" if self.field else "",
        ]
        prefix = ", ".join(w for w in where if w)
        return f"{prefix}: {self.message}" if prefix else self.message


class InvalidRows(ValueError):
    """The request's rows break the use case's schema; ``problems`` names each row and field."""

    def __init__(self, use_case: str, problems: list[Problem]) -> None:
        self.use_case, self.problems = use_case, problems
        rows = sorted({p.row for p in problems if p.row is not None})
        where = f" in {len(rows)} row(s)" if rows else ""
        super().__init__(f"use case {use_case!r}: {len(problems)} problem(s){where}; first: {problems[0]}")

    def listed(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.problems[:MAX_LISTED_PROBLEMS]]


def _shown(value: Any) -> str:
    """A value as an error message quotes it: short, whatever the client sent."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


class RequestSchema:
    """The request columns of a use case (its batch columns, the label left out) and their checks."""

    def __init__(self, use_case: UseCase) -> None:
        schema = use_case.schema_
        self.use_case = use_case
        self.target = schema.target
        self.columns: dict[str, ColumnSpec] = {
            name: col for name, col in schema.columns.items() if name != schema.target
        }
        # Keys and times are never null: a prediction is about one entity at one moment.
        self.never_null = {schema.entity, schema.event_time}

    # The schema as data ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The fields a request row has, for clients (``GET /v1/<use case>``)."""
        fields = {}
        for name, col in self.columns.items():
            entry: dict[str, Any] = {"type": col.type, "required": not self._may_be_null(name, col)}
            if col.severity == "error":
                entry |= {
                    k: v
                    for k, v in (("min", col.min), ("max", col.max), ("values", col.values))
                    if v is not None
                }
            if col.type == "datetime":
                entry["format"] = f"ISO 8601, e.g. {EXAMPLE_TIME!r} (time zones are converted to UTC)"
            fields[name] = entry
        return {
            "entity": self.use_case.schema_.entity,
            "event_time": self.use_case.schema_.event_time,
            "fields": fields,
        }

    def json_schema(self, max_rows: int) -> dict[str, Any]:
        """The request body as JSON Schema (the OpenAPI of ``POST /v1/<use case>/predict``)."""
        fields: dict[str, Any] = {}
        types: dict[str, dict[str, Any]] = {
            "int": {"type": "integer", "format": "int64"},
            "float": {"type": "number"},
            "str": {"type": "string"},
            "category": {"type": "string"},
            "datetime": {"type": "string", "format": "date-time"},
            "bool": {"type": "boolean"},
        }
        for name, col in self.columns.items():
            field = dict(types[col.type])
            if col.severity == "error":
                if col.type == "category" and col.values:
                    field["enum"] = list(col.values)
                if col.min is not None:
                    field["minimum"] = col.min
                if col.max is not None:
                    field["maximum"] = col.max
            if self._may_be_null(name, col):
                field = {"anyOf": [field, {"type": "null"}]}
            fields[name] = field
        row = {
            "type": "object",
            "properties": fields,
            "required": [n for n, c in self.columns.items() if not self._may_be_null(n, c)],
            "additionalProperties": False,
        }
        rows = {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}
        return {
            "type": "object",
            "properties": {"rows": rows},
            "required": ["rows"],
            "additionalProperties": False,
        }

    def arrow_schema(self) -> pa.Schema:
        """The Arrow types of the request columns, the same for the served frame and the request log."""
        import pyarrow as pa

        types = {
            "int": pa.int64(),
            "float": pa.float64(),
            "str": pa.string(),
            "category": pa.string(),
            "datetime": pa.timestamp("us"),
            "bool": pa.bool_(),
        }
        return pa.schema([(name, types[col.type]) for name, col in self.columns.items()])

    def _may_be_null(self, name: str, col: ColumnSpec) -> bool:
        return name not in self.never_null and (col.nullable or col.severity == "warning")

    # Checks ----------------------------------------------------------------------------------
    def check(self, rows: list[Any]) -> list[dict[str, Any]]:
        """The rows with each value as its column's Python type; InvalidRows naming every problem."""
        problems: list[Problem] = []
        typed: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append(Problem(f"a row is an object of field: value pairs, got {_kind(row)}", row=i))
                continue
            for name in row:
                if name in self.columns:
                    continue
                if name == self.target:
                    problems.append(
                        Problem(
                            "this is the label the model predicts; it is not an input, leave it out", i, name
                        )
                    )
                else:
                    problems.append(
                        Problem(f"unknown field; the fields are {', '.join(self.columns)}", i, str(name))
                    )
            out: dict[str, Any] = {}
            for name, col in self.columns.items():
                if name not in row:
                    if self._may_be_null(name, col):
                        out[name] = None
                    else:
                        problems.append(Problem(f"missing (expected {_expected(col)})", i, name))
                    continue
                value, problem = self._value(name, col, row[name])
                if problem:
                    problems.append(Problem(problem, i, name))
                out[name] = value
            typed.append(out)
        if problems:
            raise InvalidRows(self.use_case.name, problems)
        return typed

    def _value(self, name: str, col: ColumnSpec, value: Any) -> tuple[Any, str | None]:
        """``value`` converted to the column's type, or the reason it cannot be."""
        if value is None:
            if self._may_be_null(name, col):
                return None, None
            return None, f"null, but a value is required (expected {_expected(col)})"
        converted, problem = _convert(col, value)
        if problem is None and col.severity == "error":
            problem = _out_of_bounds(col, converted)
        return converted, problem

    def frame(self, typed: list[dict[str, Any]]) -> pd.DataFrame:
        """Checked rows as the frame ``build_features`` takes: the batch columns with their types."""
        import pyarrow as pa

        return pa.Table.from_pylist(typed, schema=self.arrow_schema()).to_pandas()


def _expected(col: ColumnSpec) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "category": "one of " + ", ".join(col.values or []),
        "datetime": f"an ISO 8601 date-time such as {EXAMPLE_TIME!r}",
        "bool": "true or false",
    }[col.type]


def _convert(col: ColumnSpec, value: Any) -> tuple[Any, str | None]:
    wrong = f"expected {_expected(col)}, got {_kind(value)} {_shown(value)}"
    if col.type == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, wrong
        if isinstance(value, float):
            if not value.is_integer():
                return None, wrong
            value = int(value)
        if not INT64_MIN <= value <= INT64_MAX:
            return None, f"{_shown(value)} does not fit a 64-bit integer ({INT64_MIN}..{INT64_MAX})"
        return value, None
    if col.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, wrong
        if not math.isfinite(value):
            return None, f"expected a finite number, got {_shown(value)}"
        return float(value), None
    if col.type == "bool":
        return (value, None) if isinstance(value, bool) else (None, wrong)
    if not isinstance(value, str):
        return None, wrong
    if col.type == "datetime":
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None, wrong
        if moment.tzinfo is not None:  # as the batch reader does: aware times become naive UTC
            try:
                moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
            except OverflowError:  # e.g. year 1 at +01:00: before the first UTC date-time there is
                return None, f"{_shown(value)} is out of range once converted to UTC (years 1..9999)"
        return moment, None
    return value, None


def _out_of_bounds(col: ColumnSpec, value: Any) -> str | None:
    if col.type == "category" and col.values and value not in col.values:
        return f"{_shown(value)} is not one of {', '.join(col.values)}"
    if col.type in ("int", "float"):
        low = col.min if col.min is not None else -math.inf
        high = col.max if col.max is not None else math.inf
        if not low <= value <= high:
            bounds = (
                f"{'' if col.min is None else f'{col.min:g}'}..{'' if col.max is None else f'{col.max:g}'}"
            )
            return f"{_shown(value)} is outside the allowed range {bounds}"
    return None
