"""The prediction API fuzzed from its own OpenAPI schema: whatever a client sends, never a 5xx.

Bodies are generated from the request body schema the server publishes (``/openapi.json``):
valid ones (every field within its declared type and limits, event times anywhere in years
1..9999 with any UTC offset), and the same bodies broken one way each: a field replaced by any
JSON value, a required field dropped, an unknown field, integers beyond 64 bits, deep nesting,
any JSON at all, any bytes. A valid body is answered (200), or refused as unscorable (422) when
the model gives no finite score; nothing else may be a 5xx. The model is a real pipeline as the
config declares it, fitted on simulated rows, so feature building and scoring see the values too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.serving.app import Served, create_app
from mlops.serving.champion import ServedModel
from mlops.serving.request_log import RequestLog
from mlops.serving.schema import RequestSchema

pytestmark = (
    pytest.mark.slow
)  # hundreds of generated requests: `make test` runs it, `make test-fast` does not

MAX_ROWS = 5
PATH = "/v1/churn/predict"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no example database in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis keeps caches in ./.hypothesis by default: under the test's temporary folder instead."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)  # back to the default


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from mlops.data.features import build_features
    from mlops.data.parsing import read_batch
    from mlops.dev.simulator import make_batch_bytes
    from mlops.model.training import make_pipeline

    use_case = get_use_case("churn")
    batch = read_batch(make_batch_bytes("churn", dt.date(2026, 3, 1), "csv", rows=400), use_case, "csv")
    model = make_pipeline(use_case).fit(
        build_features(batch, use_case)[use_case.feature_names], batch["churned"]
    )
    entry = type("Entry", (), {"version": "1", "run_id": "r1"})()
    served_model = ServedModel("churn_model", resolve=lambda: entry, load=lambda e: model, refresh_seconds=60)
    home = tmp_path_factory.mktemp("fuzz")
    request_log = RequestLog(
        Lake(f"file://{home}/lake"),
        use_case,
        wal_dir=home / "wal",
        flush_rows=1000,
        flush_seconds=60,
        max_pending_rows=10**9,
    )
    app = create_app(
        {"churn": Served(use_case, RequestSchema(use_case), served_model, request_log)}, max_rows=MAX_ROWS
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def body_schema(client: TestClient) -> dict[str, Any]:
    spec = client.get("/openapi.json").json()
    return spec["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]


# Strategies from JSON Schema (the subset the server publishes) -------------------------------
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
OFFSETS = st.integers(-(14 * 60), 14 * 60).map(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
DATE_TIMES = st.datetimes(timezones=st.none() | OFFSETS).map(lambda moment: moment.isoformat())


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "anyOf" in schema:
        return st.one_of([from_schema(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "object":
        properties, required = schema["properties"], set(schema.get("required", []))
        return st.fixed_dictionaries(
            {name: from_schema(sub) for name, sub in properties.items() if name in required},
            optional={name: from_schema(sub) for name, sub in properties.items() if name not in required},
        )
    if kind == "array":
        return st.lists(
            from_schema(schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 5),
        )
    if kind == "integer":
        low, high = (-(2**63), 2**63 - 1) if schema.get("format") == "int64" else (None, None)
        return st.integers(min_value=schema.get("minimum", low), max_value=schema.get("maximum", high))
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum"),
            max_value=schema.get("maximum"),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "string":
        return DATE_TIMES if schema.get("format") == "date-time" else st.text(max_size=30)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise AssertionError(f"the fuzz test does not know JSON Schema type {kind!r}: teach from_schema")


@st.composite
def broken(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A valid body broken in one way."""
    body = draw(valid)
    row = draw(st.sampled_from(body["rows"]))
    how = draw(st.sampled_from(["replace", "drop", "unknown", "huge-int", "deep", "top-level"]))
    field = draw(st.sampled_from(sorted(row) or ["customer_id"]))
    if how == "replace":
        row[field] = draw(ANY_JSON)
    elif how == "drop":
        row.pop(field, None)
    elif how == "unknown":
        row[draw(st.text(min_size=1, max_size=10))] = draw(ANY_JSON)
    elif how == "huge-int":
        row[field] = draw(st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1))
    elif how == "deep":
        depth = draw(st.integers(1, 3000))
        row[field] = "__DEEP__"
        return json.dumps(body).replace('"__DEEP__"', "[" * depth + "]" * depth).encode()
    else:
        body[draw(st.text(max_size=10))] = draw(ANY_JSON)
    return body


def post(client: TestClient, body: Any) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(PATH, content=content, headers={"Content-Type": "application/json"})


def logged_rows(client: TestClient) -> int:
    status = client.get("/health").json()["use_cases"]["churn"]["request_log"]
    assert status["broken"] is None
    return int(status["pending_rows"] + status["shipped_rows"])


def test_a_valid_body_is_answered_and_logged(client: TestClient, body_schema: dict[str, Any]) -> None:
    answered = []
    before = logged_rows(client)

    @FUZZ
    @given(body=from_schema(body_schema))
    def check(body: dict[str, Any]) -> None:
        response = post(client, body)
        assert response.status_code in (200, 422), f"{response.status_code} for {body}: {response.text}"
        if response.status_code == 422:
            assert "returned no finite score" in response.json()["error"], response.text
        else:
            assert len(response.json()["predictions"]) == len(body["rows"])
            answered.append(len(body["rows"]))

    check()
    assert answered, "no valid body was answered"
    assert logged_rows(client) - before == sum(answered)  # every answered row, and only those


def test_no_body_is_a_server_error(client: TestClient, body_schema: dict[str, Any]) -> None:
    bodies = broken(from_schema(body_schema)) | ANY_JSON | st.binary(max_size=200)

    @FUZZ
    @given(body=bodies)
    def check(body: Any) -> None:
        response = post(client, body)
        assert response.status_code < 500, f"{response.status_code} for {body!r}: {response.text}"
        assert response.json()["error"] if response.status_code >= 400 else response.json()["predictions"]

    check()
