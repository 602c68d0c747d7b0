"""The model server's HTTP contract, in process: answers, clear 4xx/503 errors, health and readiness, the request log."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.request_log import REQUEST_ID, read_online_requests
from mlops.serving.app import Served, create_app
from mlops.serving.champion import ServedModel
from mlops.serving.request_log import RequestLog
from mlops.serving.schema import RequestSchema
from tests.unit.serving.test_request_log import ROW, FlakyLake

MAX_ROWS = 3


class StubModel:
    """Scores a row by its tenure: enough to tell which rows and which version answered."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict_proba(self, features: Any) -> Any:
        import numpy as np

        p = features["tenure_months"].to_numpy() / 1000 + self.offset
        return np.column_stack([1 - p, p])


class Champion:
    version: str | None = "4"

    def resolve(self) -> Any:
        return (
            None if self.version is None else type("Entry", (), {"version": self.version, "run_id": "r4"})()
        )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return FlakyLake(f"file://{tmp_path}/lake")


@pytest.fixture
def champion() -> Champion:
    return Champion()


@pytest.fixture
def served(lake: Lake, champion: Champion, tmp_path: Path) -> Iterator[Served]:
    use_case = get_use_case("churn")
    model = ServedModel(
        "churn_model",
        resolve=champion.resolve,
        load=lambda entry: StubModel(int(entry.version) / 100),
        refresh_seconds=60,
    )
    request_log = RequestLog(
        lake, use_case, wal_dir=tmp_path / "wal", flush_rows=1000, flush_seconds=60, max_pending_rows=5
    )
    yield Served(use_case, RequestSchema(use_case), model, request_log)
    request_log.close(timeout=0)  # a test that stopped no app: release the WAL directory


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(create_app({"churn": served}, max_rows=MAX_ROWS)) as test_client:
        yield test_client


def rows(n: int) -> list[dict[str, Any]]:
    return [ROW | {"customer_id": 100 + i, "tenure_months": 10 * i} for i in range(n)]


def test_a_prediction_names_the_model_and_the_request(client: TestClient) -> None:
    response = client.post("/v1/churn/predict", json={"rows": rows(2)})
    assert response.status_code == 200, response.text
    body = response.json()
    # A version registered without a threshold of its own labels at 0.5.
    assert body["model"] == {"name": "churn_model", "version": "4", "run_id": "r4", "decision_threshold": 0.5}
    assert body["output"] == "score"
    assert body["predictions"] == [
        {"customer_id": 100, "score": pytest.approx(0.04), "predicted_label": 0},
        {"customer_id": 101, "score": pytest.approx(0.05), "predicted_label": 0},
    ]
    assert response.headers["X-Request-ID"] == body["request_id"] and len(body["request_id"]) == 32


def test_the_label_is_decided_at_the_versions_own_threshold(
    lake: Lake, served: Served, tmp_path: Path
) -> None:
    from mlops.model import tags
    from mlops.model.threshold import threshold_of

    # The registry entry carries the threshold chosen at training; the score stays the probability.
    entry = type("Entry", (), {"version": "4", "run_id": "r4", "tags": {tags.DECISION_THRESHOLD: "0.045"}})()
    served.model = ServedModel(
        "churn_model",
        resolve=lambda: entry,
        load=lambda entry: StubModel(0.04),
        refresh_seconds=60,
        threshold=threshold_of,
    )
    with TestClient(create_app({"churn": served}, max_rows=MAX_ROWS)) as client:
        body = client.post("/v1/churn/predict", json={"rows": rows(2)}).json()
        described = client.get("/v1/churn").json()
    assert body["model"]["decision_threshold"] == 0.045
    assert body["predictions"] == [
        {"customer_id": 100, "score": pytest.approx(0.04), "predicted_label": 0},
        {"customer_id": 101, "score": pytest.approx(0.05), "predicted_label": 1},
    ]
    assert described["model"]["decision_threshold"] == 0.045


def test_every_served_request_is_logged_once_at_shutdown(lake: Lake, served: Served) -> None:
    served.log.max_pending_rows = 100
    with TestClient(create_app({"churn": served}, max_rows=MAX_ROWS)) as client:
        ids = [
            client.post("/v1/churn/predict", json={"rows": rows(n)}).json()["request_id"] for n in (1, 2, 3)
        ]
        client.post("/v1/churn/predict", json={"rows": [ROW | {"plan": "gold"}]})  # refused: not logged
        assert served.log.pending_rows == 6  # on disk, not shipped yet
    today = dt.datetime.now(dt.UTC).date()
    logged = read_online_requests(lake, "churn", [today - dt.timedelta(days=1), today])
    assert sorted(logged.groupby(REQUEST_ID).size().items()) == sorted(zip(ids, [1, 2, 3], strict=True))
    assert (logged["latency_ms"] > 0).all() and set(logged["model_version"]) == {"4"}


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        pytest.param(
            "/v1/fraud/predict",
            {"rows": rows(1)},
            404,
            "unknown use case 'fraud': this server serves churn",
            id="unknown-use-case",
        ),
        pytest.param(
            "/v1/churn/predict",
            {"rows": rows(4)},
            413,
            "4 rows in one request; at most 3 are accepted",
            id="too-many-rows",
        ),
        pytest.param("/v1/churn/predict", {"rows": []}, 422, '"rows" is empty', id="no-rows"),
        pytest.param(
            "/v1/churn/predict",
            {"rows": {"a": 1}},
            422,
            '"rows" must be a list of row objects, got dict',
            id="rows-not-a-list",
        ),
        pytest.param(
            "/v1/churn/predict",
            {"inputs": rows(1)},
            422,
            'the body must be a JSON object with a "rows" list',
            id="no-rows-field",
        ),
        pytest.param(
            "/v1/churn/predict",
            {"rows": rows(1), "debug": True},
            422,
            "unknown top-level field(s) ['debug']",
            id="extra-field",
        ),
        pytest.param(
            "/v1/churn/predict",
            {"rows": [ROW, ROW | {"tenure_months": "a year"}]},
            422,
            "use case 'churn': 1 problem(s) in 1 row(s); first: row 1, field 'tenure_months': expected an integer",
            id="bad-row",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_clear_error(
    client: TestClient, path: str, body: Any, status: int, error: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error), response.json()["error"]
    assert response.json()["request_id"]


def test_a_bad_row_lists_each_problem_with_row_and_field(client: TestClient) -> None:
    response = client.post("/v1/churn/predict", json={"rows": [ROW | {"plan": "gold"}, {"customer_id": 1}]})
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert problems[0] == {
        "row": 0,
        "field": "plan",
        "message": "'gold' is not one of basic, standard, premium",
    }
    assert {(p["row"], p["field"]) for p in problems[1:]} >= {
        (1, "event_time"),
        (1, "plan"),
        (1, "tenure_months"),
    }
    assert response.json()["problem_count"] == len(problems)


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/churn/predict", content=b"customer_id=1", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not JSON")


def test_a_body_too_large_is_refused_unread(client: TestClient) -> None:
    response = client.post(
        "/v1/churn/predict", content=b"[" + b" " * 20_000 + b"]", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "at most 12288 (3 rows)" in response.json()["error"]


def test_no_champion_is_503_with_the_reason(served: Served, champion: Champion) -> None:
    champion.version = None
    with TestClient(create_app({"churn": served}, max_rows=MAX_ROWS)) as client:
        response = client.post("/v1/churn/predict", json={"rows": rows(1)})
        assert response.status_code == 503
        assert response.json()["error"] == (
            "use case 'churn': no model to serve: model 'churn_model' has no 'champion' alias: promote a version (the training DAG)"
        )
        health = client.get("/health")  # liveness: the process answers
        assert health.status_code == 200 and health.json()["status"] == "unavailable"
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["use_cases"]["churn"]["problems"][0] == (
            "no model to serve: model 'churn_model' has no 'champion' alias: promote a version (the training DAG)"
        )


def test_a_request_log_that_cannot_ship_refuses_requests_past_its_bound(
    client: TestClient, lake: FlakyLake, served: Served
) -> None:
    assert client.post("/v1/churn/predict", json={"rows": rows(3)}).status_code == 200
    lake.down = True
    served.log.sync_step(close_segment=True)
    with pytest.raises(ConnectionError):
        served.log.ship()
    assert client.post("/v1/churn/predict", json={"rows": rows(2)}).status_code == 200  # 5 rows on disk now
    refused = client.post("/v1/churn/predict", json={"rows": rows(1)})
    assert refused.status_code == 503
    assert (
        "holds 5 rows" in refused.json()["error"]
        and "ConnectionError: the lake is unreachable" in refused.json()["error"]
    )
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["use_cases"]["churn"]["request_log"]["pending_rows"] == 5
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["use_cases"]["churn"]["problems"][0].startswith(
        "the request log holds 5 rows"
    )
    lake.down = False
    served.log.sync_step(close_segment=True)
    served.log.ship()
    assert client.post("/v1/churn/predict", json={"rows": rows(1)}).status_code == 200
    assert client.get("/ready").status_code == 200


def test_health_readiness_and_description(client: TestClient) -> None:
    assert client.get("/ready").json() == {
        "ready": True,
        "use_cases": {"churn": {"ready": True, "problems": []}},
    }
    health = client.get("/health")
    assert health.status_code == 200
    churn = health.json()["use_cases"]["churn"]
    assert (health.json()["status"], churn["status"], churn["version"]) == ("ok", "ok", "4")
    described = client.get("/v1/churn").json()
    assert described["max_rows"] == MAX_ROWS and described["output"] == "score"
    assert described["model"]["version"] == "4"
    assert "churned" not in described["request"]["fields"]
    assert client.get("/v1/fraud").status_code == 404


def test_a_champion_trained_on_other_features_is_not_served(tmp_path: Path) -> None:
    """As batch scoring refuses it: the server would feed the model features it never saw."""
    from types import SimpleNamespace

    from mlops.core.settings import ServingSettings
    from mlops.serving.app import served_use_case

    class Client:  # the registry says: v7 holds champion, trained on other feature definitions
        def get_model_version_by_alias(self, name: str, alias: str) -> Any:
            return SimpleNamespace(version="7", run_id="r7", tags={"feature_version": "0123456789abcdef"})

    use_case = get_use_case("churn")
    entry = served_use_case(
        use_case, Lake(f"file://{tmp_path}/lake"), ServingSettings(wal_dir=tmp_path / "wal"), Client()
    )
    assert entry.model.refresh() is None
    status = entry.model.status()
    assert status["status"] == "unavailable"
    assert status["problem"].startswith(
        "champion is v7, but loading it failed (FeatureVersionMismatch: v7 was trained on feature version 0123456789abcdef, "
        f"but this server builds features as {use_case.feature_version}"
    )


@pytest.mark.parametrize(
    ("row", "status", "error"),
    [
        pytest.param(
            {"event_time": "0001-01-01T00:30:00+01:00"},
            422,
            "is out of range once converted to UTC",
            id="year-1-east",
        ),
        pytest.param(
            {"event_time": "9999-12-31T23:30:00-01:00"},
            422,
            "is out of range once converted to UTC",
            id="year-9999-west",
        ),
        pytest.param({"customer_id": 2**63}, 422, "does not fit a 64-bit integer", id="key-beyond-int64"),
        pytest.param(
            {"customer_id": -(2**63) - 1}, 422, "does not fit a 64-bit integer", id="key-below-int64"
        ),
        pytest.param({"customer_id": 1e300}, 422, "does not fit a 64-bit integer", id="key-huge-float"),
    ],
)
def test_extreme_values_are_refused_with_a_reason(
    client: TestClient, served: Served, row: dict[str, Any], status: int, error: str
) -> None:
    response = client.post("/v1/churn/predict", json={"rows": [ROW | row]})
    assert response.status_code == status, response.text
    assert error in response.json()["error"]
    assert served.log.pending_rows == 0


@pytest.mark.parametrize(
    "depth", [pytest.param(20, id="deeper-than-allowed"), pytest.param(100_000, id="deeper-than-the-parser")]
)
def test_deeply_nested_json_is_400(client: TestClient, depth: int) -> None:
    body = b'{"rows": [{"plan": ' + b"[" * depth + b"]" * depth + b"}]}"
    response = client.post("/v1/churn/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 413), response.text
    if depth == 20:
        assert response.json()["error"].startswith("the body nests deeper than 16 levels")


def test_a_model_output_that_is_not_finite_is_422_and_not_logged(served: Served, champion: Champion) -> None:
    class NanModel:
        def predict_proba(self, features: Any) -> Any:
            import numpy as np

            p = np.where(features["tenure_months"].to_numpy() > 5, np.nan, 0.5)
            return np.column_stack([1 - p, p])

    served.model._load = lambda entry: (
        NanModel()
    )  # the registry's loader, stubbed: the model is the fixture here
    with TestClient(create_app({"churn": served}, max_rows=MAX_ROWS)) as client:
        response = client.post("/v1/churn/predict", json={"rows": rows(3)})
        assert response.status_code == 422, response.text
        assert response.json()["error"].startswith(
            "use case 'churn': model v4 returned no finite score for 2 row(s), first row 1"
        )
        assert response.json()["rows"] == [1, 2]
        assert served.log.pending_rows == 0
        assert client.post("/v1/churn/predict", json={"rows": rows(1)}).status_code == 200
        assert served.log.pending_rows == 1


def test_the_openapi_documents_each_use_cases_request_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/churn/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    rows_schema = body["properties"]["rows"]
    assert (rows_schema["minItems"], rows_schema["maxItems"]) == (1, MAX_ROWS)
    fields = rows_schema["items"]["properties"]
    assert fields["plan"]["enum"] == ["basic", "standard", "premium"]
    assert fields["tenure_months"] == {"type": "integer", "format": "int64", "minimum": 0, "maximum": 240}
    assert fields["customer_id"] == {"type": "integer", "format": "int64"}
    assert fields["avg_session_minutes"]["anyOf"][1] == {"type": "null"}
    assert "churned" not in fields and "avg_session_minutes" not in rows_schema["items"]["required"]


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
)  # the thread's death, on purpose
def test_readiness_names_a_stopped_refresh_and_a_served_version_that_is_not_champion(
    served: Served, champion: Champion
) -> None:
    model = served.model
    with TestClient(create_app({"churn": served}, max_rows=MAX_ROWS)) as client:
        assert client.get("/ready").status_code == 200

        def resolve_dies() -> Any:
            raise SystemExit("a fault that ends the thread")  # not an Exception: nothing catches it

        model._resolve = resolve_dies
        model.refresh_seconds = 0.01
        model.stop()
        model.start()
        deadline = time.monotonic() + 10
        while model._thread is not None and model._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert any(
            p.startswith("the champion refresh thread has stopped")
            for p in ready.json()["use_cases"]["churn"]["problems"]
        )
        assert client.get("/health").status_code == 200
    # A champion whose load fails: the old version keeps serving, but it is not the champion.
    model = ServedModel(
        "churn_model", resolve=champion.resolve, load=lambda entry: StubModel(0.0), refresh_seconds=60
    )
    model.refresh()
    champion.version = "5"

    def broken(entry: Any) -> Any:
        raise ValueError("v5 is not a skops file")

    model._load = broken
    model.refresh()
    (problem,) = model.problems()
    assert problem.startswith(
        "serving v4, but the registry's champion is v5: champion is v5, but loading it failed"
    )
