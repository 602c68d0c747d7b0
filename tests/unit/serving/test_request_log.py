"""The request log: on disk before the answer, in the lake once, bounded, and taken over after a crash."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.request_log import REQUEST_ID, CorruptBatch, online_features, read_online_requests
from mlops.serving.request_log import (
    SEGMENT_SUFFIX,
    LogRefused,
    RequestLog,
    WalInUse,
    log_schema,
    read_segment,
)
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


class FlakyLake(Lake):
    """A lake whose writes fail while ``down`` is set."""

    down = False

    def write_bytes(self, rel: str, data: bytes) -> str:
        if self.down:
            raise ConnectionError("the lake is unreachable")
        return super().write_bytes(rel, data)


@pytest.fixture
def lake(tmp_path: Path) -> FlakyLake:
    return FlakyLake(f"file://{tmp_path}/lake")


@pytest.fixture
def wal(tmp_path: Path) -> Path:
    return tmp_path / "wal" / "churn"


@pytest.fixture
def logs() -> Iterator[list[RequestLog]]:
    """Every log a test opens is closed after it (threads stopped, the directory lock released)."""
    opened: list[RequestLog] = []
    yield opened
    for request_log in opened:
        request_log.close(timeout=0)


@pytest.fixture
def open_log(lake: Lake, wal: Path, logs: list[RequestLog]) -> Any:
    def make(*, start: bool = True, **kwargs: Any) -> RequestLog:
        options = {"flush_rows": 1000, "flush_seconds": 3600.0} | kwargs
        request_log = RequestLog(lake, get_use_case("churn"), wal_dir=wal, **options)
        logs.append(request_log)
        request_log.start() if start else request_log.open()
        return request_log

    return make


def send(log: RequestLog, request_id: str, rows: int = 1, at: dt.datetime = NOON) -> None:
    typed = RequestSchema(get_use_case("churn")).check([ROW | {"customer_id": i} for i in range(rows)])
    log.append(
        request_id=request_id,
        received_at=at,
        rows=typed,
        outputs=[0.25] * rows,
        model_version="3",
        latency_ms=1.5,
    )


def segments(wal: Path) -> list[Path]:
    return sorted(wal.glob(f"*{SEGMENT_SUFFIX}"))


def logged_ids(lake: Lake, day: dt.date = DAY) -> list[str]:
    return (
        sorted(read_online_requests(lake, "churn", [day])[REQUEST_ID])
        if lake.exists(layout.serving_dir("churn", day))
        else []
    )


def test_an_appended_request_is_on_disk_when_append_returns(open_log: Any, wal: Path, lake: Lake) -> None:
    log = open_log()
    send(log, "a", rows=3)
    ((records, size),) = [read_segment(path) for path in segments(wal)]
    assert [(r["id"], len(r["rows"]), r["out"]) for r in records] == [("a", 3, [0.25, 0.25, 0.25])]
    assert log.status()["pending_rows"] == 3 and log.status()["pending_bytes"] == size
    assert logged_ids(lake) == []  # not shipped yet: the segment is still open


def test_a_closed_segment_is_shipped_and_deleted(open_log: Any, wal: Path, lake: Lake) -> None:
    log = open_log()
    send(log, "a", rows=3)
    send(log, "b", rows=2)
    log.sync_step(close_segment=True)
    log.ship()
    frame = read_online_requests(lake, "churn", [DAY])
    assert list(zip(frame[REQUEST_ID], frame["request_row"], strict=True)) == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
    ]
    assert list(frame["customer_id"]) == [0, 1, 2, 0, 1]
    assert set(frame["model_version"]) == {"3"} and set(frame["score"]) == {0.25}
    assert frame["avg_session_minutes"].isna().all()
    assert frame["received_at"].iloc[0] == NOON
    assert frame["event_time"].iloc[0] == dt.datetime(2026, 3, 2, 8, 15)
    (manifest,) = lake.children(layout.serving_manifests_dir("churn", DAY), ".json")
    assert (lake.read_json(manifest)["rows"], lake.read_json(manifest)["requests"]) == (5, 2)
    assert len(segments(wal)) == 1 and log.pending_rows == 0  # only the new, empty open segment


def test_the_writer_closes_a_segment_by_rows_and_by_age(open_log: Any, lake: Lake) -> None:
    log = open_log(flush_rows=4, flush_seconds=0.3)
    send(log, "full", rows=4)  # flush_rows reached
    deadline = time.monotonic() + 10
    while logged_ids(lake) != ["full"] * 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged_ids(lake) == ["full"] * 4
    send(log, "old", rows=1)  # shipped once its first row is flush_seconds old
    while len(logged_ids(lake)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged_ids(lake) == ["full"] * 4 + ["old"]


def test_a_segment_shipped_twice_is_in_the_lake_once(
    open_log: Any, wal: Path, lake: Lake, tmp_path: Path
) -> None:
    """As when the server dies after the lake has the batch but before the segment is deleted."""
    log = open_log(start=False, sync=False)
    send(log, "a", rows=2)
    log.sync_step(close_segment=True)
    (segment,) = [p for p in segments(wal) if read_segment(p)[0]]
    shutil.copy(segment, tmp_path / "copy")
    log.ship()
    log.close(timeout=5)
    shutil.copy(tmp_path / "copy", segment)  # the deletion never happened
    again = open_log()
    assert again.status()["pending_rows"] == 2
    again.close(timeout=10)
    assert logged_ids(lake) == ["a", "a"]
    assert len(lake.children(layout.serving_manifests_dir("churn", DAY), ".json")) == 1
    assert segments(wal) == []


def test_a_segment_torn_by_a_crash_keeps_its_whole_records(open_log: Any, wal: Path, lake: Lake) -> None:
    log = open_log(start=False, sync=False)
    send(log, "a")
    send(log, "b")
    log.sync_step()
    (segment,) = segments(wal)
    log.close(timeout=0)  # no shipping: the lake is not asked
    data = segment.read_bytes() if segment.exists() else b""
    assert data, "close leaves an unshipped segment on disk"
    segment.write_bytes(data[:-7])  # the last record cut mid-write, as by SIGKILL
    open_log().close(timeout=10)
    assert logged_ids(lake) == ["a"]


def test_a_lake_outage_keeps_rows_on_disk_then_refuses_at_the_bound(
    open_log: Any, lake: FlakyLake, wal: Path
) -> None:
    log = open_log(start=False, sync=False, max_pending_rows=3)
    send(log, "a", rows=2)
    log.sync_step(close_segment=True)
    lake.down = True
    with pytest.raises(ConnectionError):
        log.ship()
    assert log.status()["error"] == "ConnectionError: the lake is unreachable"
    assert log.refusal() is None and log.problems() == []
    send(log, "b", rows=1)
    with pytest.raises(
        LogRefused, match=r"holds 3 rows .* not yet in the lake, at most 3 rows .*the lake is unreachable"
    ):
        send(log, "c", rows=1)
    assert log.problems() and log.problems()[0].startswith("the request log holds 3 rows")
    assert log.close(timeout=0.5) == 3  # shutdown cannot ship: the rows stay on disk
    lake.down = False
    again = open_log()
    assert again.close(timeout=10) == 0
    assert logged_ids(lake) == ["a", "a", "b"]


def test_the_bound_holds_under_concurrent_requests(open_log: Any) -> None:
    log = open_log(max_pending_rows=50)
    accepted, refused = [], []

    def client(n: int) -> None:
        for i in range(20):
            try:
                send(log, f"{n}-{i}")
                accepted.append(1)
            except LogRefused:
                refused.append(1)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(accepted), len(refused), log.pending_rows) == (50, 110, 50)


def test_a_wal_directory_that_cannot_be_written_refuses_requests(
    open_log: Any, tmp_path: Path, lake: Lake, logs: list[RequestLog]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    log = RequestLog(lake, get_use_case("churn"), wal_dir=blocker / "churn", flush_rows=10, flush_seconds=60)
    logs.append(log)
    log.start()
    (problem,) = log.problems()
    assert problem.startswith(f"the write-ahead log directory {blocker / 'churn'} cannot be used")
    with pytest.raises(LogRefused, match="cannot be used"):
        send(log, "a")


def test_one_process_at_a_time_uses_a_wal_directory(open_log: Any) -> None:
    open_log()
    with pytest.raises(WalInUse, match="another process holds the request log's directory"):
        open_log()


def test_close_ships_what_is_left(open_log: Any, lake: Lake, wal: Path) -> None:
    log = open_log()
    send(log, "a", rows=4)
    assert log.close(timeout=10) == 0
    assert logged_ids(lake) == ["a"] * 4 and segments(wal) == []
    with pytest.raises(LogRefused, match="stopping"):
        send(log, "b")


def test_a_batch_spanning_midnight_is_split_by_day(open_log: Any, lake: Lake) -> None:
    log = open_log()
    send(log, "late", at=dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC))
    send(log, "early", at=dt.datetime(2026, 3, 2, 0, 0, 1, tzinfo=dt.UTC))
    log.close(timeout=10)
    assert logged_ids(lake, DAY - dt.timedelta(days=1)) == ["late"]
    assert logged_ids(lake) == ["early"]


def test_a_batch_without_its_manifest_is_not_read(open_log: Any, lake: Lake) -> None:
    log = open_log()
    send(log, "a")
    log.close(timeout=10)
    (manifest,) = lake.children(layout.serving_manifests_dir("churn", DAY), ".json")
    lake.delete(manifest)  # as if the shipper died between the batch and its manifest
    assert read_online_requests(lake, "churn", [DAY]).empty


def test_a_batch_changed_after_commit_is_refused(open_log: Any, lake: Lake) -> None:
    log = open_log()
    send(log, "a")
    log.close(timeout=10)
    (batch,) = lake.children(layout.serving_dir("churn", DAY), ".parquet")
    lake.write_bytes(batch, b"PAR1 not what was committed")
    with pytest.raises(CorruptBatch, match="does not match the SHA-256"):
        read_online_requests(lake, "churn", [DAY])


def test_logged_requests_give_the_features_the_model_saw(open_log: Any, lake: Lake) -> None:
    from mlops.data.features import build_features

    use_case = get_use_case("churn")
    log = open_log()
    send(log, "a", rows=3)
    log.close(timeout=10)
    logged = read_online_requests(lake, "churn", [DAY])
    features = online_features(logged, use_case)
    schema = RequestSchema(use_case)
    expected = build_features(
        schema.frame(schema.check([ROW | {"customer_id": i} for i in range(3)])), use_case
    )
    assert features[expected.columns].equals(expected)
    assert list(features["score"]) == [0.25] * 3 and list(features["model_version"]) == ["3"] * 3


def test_a_batch_column_named_like_a_log_column_is_refused() -> None:
    use_case = get_use_case("churn")
    columns = dict(use_case.schema_.columns)
    columns["latency_ms"] = columns["monthly_charges"]
    clashing = use_case.model_copy(
        update={"schema_": use_case.schema_.model_copy(update={"columns": columns})}
    )
    with pytest.raises(ValueError, match=r"\['latency_ms'\] clash with the request log's own columns"):
        log_schema(clashing)


def test_received_at_must_be_aware(open_log: Any) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="timezone-aware"):
        log.append(
            request_id="a",
            received_at=dt.datetime(2026, 3, 2),
            rows=[],
            outputs=[],
            model_version="1",
            latency_ms=1.0,
        )
