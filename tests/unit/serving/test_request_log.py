"""The request log: batches by rows, by age and at close; committed batches only; nothing twice."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.request_log import REQUEST_ID, CorruptBatch, online_features, read_online_requests
from mlops.serving.request_log import RequestLog, log_schema
from mlops.serving.schema import RequestSchema

DAY = dt.date(2026, 3, 2)
NOON = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
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
    "avg_session_minutes": None,
    "payment_failures_90d": 0,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def request_log(lake: Lake, clock: Clock, **kwargs: Any) -> RequestLog:
    options = {"flush_rows": 5, "flush_seconds": 60.0} | kwargs
    return RequestLog(lake, get_use_case("churn"), clock=clock, **options)


def send(log: RequestLog, request_id: str, rows: int = 1, at: dt.datetime = NOON) -> None:
    typed = RequestSchema(get_use_case("churn")).check([ROW | {"customer_id": i} for i in range(rows)])
    log.append(request_id=request_id, received_at=at, rows=typed, outputs=[0.25] * rows, model_version="3", latency_ms=1.5)


def test_a_batch_is_due_after_flush_rows_or_flush_seconds(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock)
    assert not log.due()
    send(log, "a", rows=2)
    assert not log.due()
    clock.now += 59
    assert not log.due()
    clock.now += 1
    assert log.due()  # the oldest row is flush_seconds old
    assert log.flush() == 2
    send(log, "b", rows=5)
    assert log.due()  # flush_rows reached


def test_a_flushed_batch_is_read_back_with_every_row_once(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock)
    send(log, "a", rows=3)
    send(log, "b", rows=2)
    assert log.flush() == 5
    send(log, "c", rows=1)
    assert log.flush() == 1
    frame = read_online_requests(lake, "churn", [DAY])
    assert list(zip(frame[REQUEST_ID], frame["request_row"], strict=True)) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 0)]
    assert list(frame["customer_id"]) == [0, 1, 2, 0, 1, 0]
    assert set(frame["model_version"]) == {"3"} and set(frame["score"]) == {0.25}
    assert frame["avg_session_minutes"].isna().all()
    assert frame["received_at"].iloc[0] == NOON
    manifests = lake.children(layout.serving_manifests_dir("churn", DAY), ".json")
    # Both batches were received at the same moment: their names differ in the random suffix.
    assert sorted((lake.read_json(m)["rows"], lake.read_json(m)["requests"]) for m in manifests) == [(1, 1), (5, 2)]


def test_a_batch_without_its_manifest_is_not_read(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock)
    send(log, "a")
    log.flush()
    (manifest,) = lake.children(layout.serving_manifests_dir("churn", DAY), ".json")
    lake.delete(manifest)  # as if the writer died between the batch and its manifest
    assert read_online_requests(lake, "churn", [DAY]).empty


def test_a_batch_spanning_midnight_is_split_by_day(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock)
    send(log, "late", at=dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC))
    send(log, "early", at=dt.datetime(2026, 3, 2, 0, 0, 1, tzinfo=dt.UTC))
    log.flush()
    assert list(read_online_requests(lake, "churn", [DAY - dt.timedelta(days=1)])[REQUEST_ID]) == ["late"]
    assert list(read_online_requests(lake, "churn", [DAY])[REQUEST_ID]) == ["early"]


class FlakyLake(Lake):
    """A lake whose writes fail while ``down`` is set."""

    down = False

    def write_bytes(self, rel: str, data: bytes) -> str:
        if self.down:
            raise ConnectionError("the lake is unreachable")
        return super().write_bytes(rel, data)


def test_a_failed_write_is_kept_and_written_once_later(tmp_path: Path, clock: Clock) -> None:
    lake = FlakyLake(f"file://{tmp_path}/lake")
    log = request_log(lake, clock, max_pending_rows=3)
    send(log, "a", rows=2)
    lake.down = True
    with pytest.raises(ConnectionError):
        log.flush()
    assert log.status()["error"] == "ConnectionError: the lake is unreachable"
    assert log.pending_rows == 2 and log.accepting()
    send(log, "b", rows=1)
    assert not log.accepting()  # 3 rows it cannot write: the server refuses more (503)
    lake.down = False
    assert log.flush() == 3
    assert log.accepting() and log.status()["error"] is None
    assert sorted(read_online_requests(lake, "churn", [DAY])[REQUEST_ID]) == ["a", "a", "b"]


def test_close_writes_what_is_left(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock, flush_rows=1000)
    log.start()
    send(log, "a", rows=4)
    assert log.close() == 0
    assert len(read_online_requests(lake, "churn", [DAY])) == 4


def test_the_flusher_thread_writes_a_batch_when_it_is_due(lake: Lake) -> None:
    log = RequestLog(lake, get_use_case("churn"), flush_rows=1000, flush_seconds=0.2)
    log.start()
    try:
        send(log, "a", rows=2)
        deadline = time.monotonic() + 10
        while log.pending_rows and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.pending_rows == 0
        assert len(read_online_requests(lake, "churn", [DAY])) == 2
    finally:
        log.close()


def test_a_batch_changed_after_commit_is_refused(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock)
    send(log, "a")
    log.flush()
    (batch,) = [p for p in lake.children(layout.serving_dir("churn", DAY), ".parquet")]
    lake.write_bytes(batch, b"PAR1 not what was committed")
    with pytest.raises(CorruptBatch, match="does not match the SHA-256"):
        read_online_requests(lake, "churn", [DAY])


def test_logged_requests_give_the_features_the_model_saw(lake: Lake, clock: Clock) -> None:
    from mlops.data.features import build_features

    use_case = get_use_case("churn")
    log = request_log(lake, clock)
    send(log, "a", rows=3)
    log.flush()
    logged = read_online_requests(lake, "churn", [DAY])
    features = online_features(logged, use_case)
    schema = RequestSchema(use_case)
    expected = build_features(schema.frame(schema.check([ROW | {"customer_id": i} for i in range(3)])), use_case)
    assert features[expected.columns].equals(expected)
    assert list(features["score"]) == [0.25] * 3 and list(features["model_version"]) == ["3"] * 3


def test_a_batch_column_named_like_a_log_column_is_refused() -> None:
    use_case = get_use_case("churn")
    columns = dict(use_case.schema_.columns)
    columns["latency_ms"] = columns["monthly_charges"]
    clashing = use_case.model_copy(update={"schema_": use_case.schema_.model_copy(update={"columns": columns})})
    with pytest.raises(ValueError, match=r"\['latency_ms'\] clash with the request log's own columns"):
        log_schema(clashing)


def test_received_at_must_be_aware(lake: Lake, clock: Clock) -> None:
    log = request_log(lake, clock)
    with pytest.raises(ValueError, match="timezone-aware"):
        log.append(request_id="a", received_at=dt.datetime(2026, 3, 2), rows=[], outputs=[], model_version="1", latency_ms=1.0)
