"""Request rows are checked against the use case's batch columns, and featurized as batches are."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from mlops.core.config import get_use_case
from mlops.data.features import build_features
from mlops.data.parsing import read_batch
from mlops.dev.simulator import make_batch_bytes
from mlops.serving.schema import MAX_LISTED_PROBLEMS, InvalidRows, RequestSchema

DAY = dt.date(2026, 3, 2)
ROW: dict[str, Any] = {
    "customer_id": 17,
    "event_time": "2026-03-02T08:15:00",
    "plan": "basic",
    "region": "north",
    "tenure_months": 12,
    "monthly_charges": 49.5,
    "total_charges": 594.0,
    "logins_30d": 20,
    "support_contacts_30d": 1,
    "avg_session_minutes": 11.5,
    "payment_failures_90d": 0,
}


@pytest.fixture(scope="module")
def churn() -> RequestSchema:
    return RequestSchema(get_use_case("churn"))


def problems_of(schema: RequestSchema, rows: list[Any]) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(InvalidRows) as raised:
        schema.check(rows)
    return [(p.row, p.field, p.message) for p in raised.value.problems]


def test_a_valid_row_comes_back_typed(churn: RequestSchema) -> None:
    (row,) = churn.check([ROW | {"tenure_months": 12.0, "event_time": "2026-03-02T09:15:00+01:00"}])
    assert row["tenure_months"] == 12 and isinstance(row["tenure_months"], int)
    assert isinstance(row["monthly_charges"], float)
    # An aware time becomes naive UTC, as the batch reader makes it.
    assert row["event_time"] == dt.datetime(2026, 3, 2, 8, 15)


def test_a_nullable_field_may_be_null_or_left_out(churn: RequestSchema) -> None:
    without = {k: v for k, v in ROW.items() if k != "avg_session_minutes"}
    assert churn.check([without])[0]["avg_session_minutes"] is None
    assert churn.check([ROW | {"avg_session_minutes": None}])[0]["avg_session_minutes"] is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        pytest.param(
            {"tenure_months": "12"},
            "tenure_months",
            "expected an integer, got a string '12'",
            id="int-as-string",
        ),
        pytest.param(
            {"tenure_months": 1.5}, "tenure_months", "expected an integer, got float 1.5", id="int-fraction"
        ),
        pytest.param(
            {"tenure_months": True},
            "tenure_months",
            "expected an integer, got a boolean True",
            id="int-as-bool",
        ),
        pytest.param(
            {"monthly_charges": "cheap"},
            "monthly_charges",
            "expected a number, got a string 'cheap'",
            id="float-as-string",
        ),
        pytest.param(
            {"monthly_charges": float("nan")},
            "monthly_charges",
            "expected a finite number, got nan",
            id="nan",
        ),
        pytest.param(
            {"monthly_charges": 501},
            "monthly_charges",
            "501.0 is outside the allowed range 0..500",
            id="above-max",
        ),
        pytest.param(
            {"tenure_months": -1}, "tenure_months", "-1 is outside the allowed range 0..240", id="below-min"
        ),
        pytest.param(
            {"plan": "gold"}, "plan", "'gold' is not one of basic, standard, premium", id="unknown-category"
        ),
        pytest.param(
            {"plan": 3},
            "plan",
            "expected one of basic, standard, premium, got int 3",
            id="category-as-number",
        ),
        pytest.param(
            {"plan": None},
            "plan",
            "null, but a value is required (expected one of basic, standard, premium)",
            id="null",
        ),
        pytest.param(
            {"event_time": "yesterday"},
            "event_time",
            "expected an ISO 8601 date-time such as '2026-01-05T14:30:00Z', got a string 'yesterday'",
            id="bad-time",
        ),
        pytest.param(
            {"event_time": 1767225600},
            "event_time",
            "expected an ISO 8601 date-time such as '2026-01-05T14:30:00Z', got int 1767225600",
            id="epoch-time",
        ),
        pytest.param(
            {"customer_id": None},
            "customer_id",
            "null, but a value is required (expected an integer)",
            id="null-key",
        ),
        pytest.param(
            {"churned": 1},
            "churned",
            "this is the label the model predicts; it is not an input, leave it out",
            id="label",
        ),
        pytest.param(
            {"favourite_colour": "red"},
            "favourite_colour",
            "unknown field; the fields are customer_id, event_time, plan",
            id="extra",
        ),
    ],
)
def test_each_problem_names_the_row_and_field(
    churn: RequestSchema, change: dict[str, Any], field: str, message: str
) -> None:
    ((row, named, text),) = problems_of(churn, [ROW, ROW | change])
    assert (row, named) == (1, field)
    assert text.startswith(message), text


def test_a_missing_field_names_what_was_expected(churn: RequestSchema) -> None:
    rows = [{k: v for k, v in ROW.items() if k != "monthly_charges"}]
    assert problems_of(churn, rows) == [(0, "monthly_charges", "missing (expected a number)")]


def test_a_row_that_is_not_an_object(churn: RequestSchema) -> None:
    assert problems_of(churn, [[1, 2]]) == [(0, None, "a row is an object of field: value pairs, got a list")]


def test_a_warning_column_accepts_what_the_gate_only_warns_about(churn: RequestSchema) -> None:
    # avg_session_minutes has severity: warning (max 600): the gate lets such a batch through.
    assert churn.check([ROW | {"avg_session_minutes": 9000.0}])[0]["avg_session_minutes"] == 9000.0


def test_every_problem_is_counted_and_the_first_are_listed(churn: RequestSchema) -> None:
    rows = [ROW | {"plan": "gold", "region": "moon"} for _ in range(30)]
    with pytest.raises(InvalidRows) as raised:
        churn.check(rows)
    assert len(raised.value.problems) == 60
    assert len(raised.value.listed()) == MAX_LISTED_PROBLEMS
    assert str(raised.value).startswith(
        "use case 'churn': 60 problem(s) in 30 row(s); first: row 0, field 'plan'"
    )


def test_describe_lists_the_request_fields_without_the_label(churn: RequestSchema) -> None:
    described = churn.describe()
    assert "churned" not in described["fields"]
    assert described["fields"]["plan"] == {
        "type": "category",
        "required": True,
        "values": ["basic", "standard", "premium"],
    }
    assert described["fields"]["avg_session_minutes"]["required"] is False


@pytest.mark.parametrize("name", ["churn", "delivery_time"])
def test_served_rows_give_the_features_a_batch_gives(name: str) -> None:
    """Serving == scoring: rows sent as JSON become the same features as the landed batch."""
    import pandas as pd

    use_case = get_use_case(name)
    batch = read_batch(
        make_batch_bytes(name, DAY, use_case.source.format, rows=200), use_case, use_case.source.format
    )
    expected = build_features(batch, use_case)

    schema = RequestSchema(use_case)
    inputs = batch.drop(columns=[use_case.schema_.target])
    rows = json.loads(inputs.to_json(orient="records", date_format="iso", date_unit="us"))
    served = build_features(schema.frame(schema.check(rows)), use_case)
    pd.testing.assert_frame_equal(served, expected)
