"""The model server's request log: every answered request on local disk first, then in the lake.

Answered => logged. Each served request is appended, with what was answered for each row, to a
write-ahead log (WAL) on the server's local disk before its answer leaves: the request thread
writes its record, then waits until a writer thread has fsync'd it (group commit: one fsync
covers every record written meanwhile, so concurrent requests share it). A SIGKILL, an OOM kill
or a container stop after the answer cannot lose the row. ``sync=False`` skips the fsync and the
wait; it exists for the benchmark's baseline only.

The WAL is a directory of segments, ``<wal_dir>/<segment>.wal``, one open at a time. A segment
is closed after ``flush_rows`` rows, ``flush_seconds`` after its first row, and at shutdown; a
closed segment is shipped to the lake by a shipper thread and deleted only once the lake has it.
Each record is ``<length><CRC-32><JSON>``: a record torn by a crash mid-write fails its check
and ends the segment there (it was never answered: its fsync had not returned).

A shipped segment becomes one batch per day received (UTC) at ``serving/<uc>/<day>/<segment>.parquet``,
moved into place atomically, then its manifest ``serving/<uc>/<day>/_manifests/<segment>.json``,
written last: readers see committed batches only. The batch is named after the segment, and a
batch whose manifest exists is not written again, so shipping a segment twice (a crash between
the lake write and the delete) leaves one copy. At start the server ships whatever segments a
previous process left; one process at a time may use a WAL directory (an ``flock``).

Bounded: while more than ``max_pending_bytes`` (or ``max_pending_rows``) are not yet in the lake,
the lake being down, a request is refused (503) with the reason, and readiness says why; the
check and the append happen under one lock, so concurrent requests cannot overshoot it. Shutdown
ships for at most ``drain_seconds`` and leaves the rest on disk for the next start.

The record itself (its columns, the batch manifest) and its reader are in
``mlops.data.request_log``: monitoring reads the log without depending on the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core import layout
from mlops.data.request_log import (
    LATENCY_MS,
    LOG_COLUMNS,
    MODEL_VERSION,
    RECEIVED_AT,
    REQUEST_ID,
    REQUEST_ROW,
    OnlineRequestBatch,
    output_column,
)
from mlops.serving.schema import RequestSchema

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".wal"
LOCK_FILE = ".lock"
# A record: payload length and CRC-32 (big-endian uint32 each), then the JSON payload.
RECORD_HEADER = struct.Struct(">II")
# How long a request waits for its record's fsync before it is refused (the disk hangs).
DURABLE_TIMEOUT_SECONDS = 10.0
# The shipper retries a failing lake after this many seconds, doubling up to the maximum.
SHIP_RETRY_SECONDS, SHIP_RETRY_MAX_SECONDS = 1.0, 30.0


def log_schema(use_case: UseCase) -> pa.Schema:
    """The Arrow schema of a request-log batch: the log's own columns, then the request columns."""
    import pyarrow as pa

    inputs = RequestSchema(use_case).arrow_schema()
    out = output_column(use_case)
    clash = sorted(set(inputs.names) & {*LOG_COLUMNS, out})
    if clash:
        raise ValueError(
            f"use case {use_case.name!r}: batch column(s) {clash} clash with the request log's own columns "
            f"{[*LOG_COLUMNS, out]}; rename them at the source to serve this use case"
        )
    own = [
        (REQUEST_ID, pa.string()),
        (REQUEST_ROW, pa.int32()),
        (RECEIVED_AT, pa.timestamp("us", tz="UTC")),
        (MODEL_VERSION, pa.string()),
        (LATENCY_MS, pa.float64()),
        (out, pa.float64()),
    ]
    return pa.schema([*own, *inputs])


class LogRefused(Exception):
    """The request log cannot take this request (bound reached, disk failing, stopping); the message says why."""


class WalInUse(RuntimeError):
    """Another process holds the WAL directory: two servers may not share one."""


@dataclass
class _Segment:
    """One WAL file: its id (the lake batch name), path, and what it holds."""

    id: str
    path: Path
    rows: int = 0
    bytes: int = 0
    first_at: float | None = None  # clock() at its first record: it closes flush_seconds later
    fd: int | None = None


def encode_record(
    request_id: str,
    received_at: dt.datetime,
    model_version: str,
    latency_ms: float,
    rows: list[dict[str, Any]],
    outputs: list[float],
) -> bytes:
    """One WAL record (header and JSON payload) for a served request."""
    payload = json.dumps(
        {
            "id": request_id,
            "at": received_at.isoformat(),
            "v": model_version,
            "ms": latency_ms,
            "rows": rows,
            "out": outputs,
        },
        default=_json_value,
        allow_nan=False,
        separators=(",", ":"),
    ).encode()
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _json_value(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"a request-log value of type {type(value).__name__} cannot be recorded: {value!r}")


def read_segment(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a segment in order, and the bytes they take; a torn or corrupt tail ends it."""
    data = path.read_bytes()
    records, offset = [], 0
    while offset + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, offset)
        start, end = offset + RECORD_HEADER.size, offset + RECORD_HEADER.size + length
        payload = data[start:end]
        if end > len(data) or zlib.crc32(payload) != crc:
            break
        records.append(json.loads(payload))
        offset = end
    if offset != len(data):
        log.warning(
            "request log: %s ends in %d bytes that are not a whole record (a write cut short); ignored",
            path,
            len(data) - offset,
        )
    return records, offset


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RequestLog:
    """The WAL of one use case and its shipping to the lake (see the module docstring).

    :meth:`start` opens the WAL (shipping what a previous process left) and starts the writer
    and shipper threads; :meth:`append` records a served request and returns once it is durable;
    :meth:`close` stops, ships until a deadline, and leaves the rest on disk.
    """

    def __init__(
        self,
        lake: Lake,
        use_case: UseCase,
        *,
        wal_dir: Path,
        flush_rows: int,
        flush_seconds: float,
        max_pending_bytes: int = 256 * 1024 * 1024,
        max_pending_rows: int | None = None,
        sync: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lake, self.use_case = lake, use_case
        self.wal_dir = wal_dir
        self.schema = log_schema(use_case)
        self.output = output_column(use_case)
        self._datetime_columns = [
            n for n, c in RequestSchema(use_case).columns.items() if c.type == "datetime"
        ]
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.max_pending_bytes = max_pending_bytes
        self.max_pending_rows = max_pending_rows or max(100 * flush_rows, 100_000)
        self.sync = sync
        self._clock = clock
        # _lock guards the open segment, the counters and the sequence numbers; _cond wakes the
        # writer thread (a record to fsync) and the requests waiting for their fsync.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()  # one fsync-and-close step at a time
        self._ship_lock = threading.Lock()  # one shipment at a time
        self._open: _Segment | None = None
        self._closed: list[_Segment] = []  # fsync'd and closed, oldest first, not yet in the lake
        self._written_seq = self._synced_seq = 0
        self._pending_rows = self._pending_bytes = 0
        self._last_record = 0  # bytes of the last record offered: readiness asks whether one more fits
        self._lock_fd: int | None = None
        self._stopping = False
        self.broken: str | None = "the request log is not open yet"  # set: nothing can be appended
        self._writer: threading.Thread | None = None
        self._shipper: threading.Thread | None = None
        self._ship_wake = threading.Event()
        self._ship_deadline: float | None = None  # set by close: ship until then, then stop
        self.shipped_rows = self.shipped_segments = 0
        self.last_ship_at: str | None = None
        self.last_error: str | None = None  # the last failed shipment; None once one succeeds

    # Opening --------------------------------------------------------------------------------
    def open(self) -> None:
        """Lock the WAL directory, take over the segments a previous process left, open a segment.

        A directory that cannot be created or written leaves the log ``broken`` (requests 503,
        not ready) rather than failing the server; another live server holding it raises WalInUse.
        """
        try:
            self.wal_dir.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self.wal_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self.broken = (
                f"the write-ahead log directory {self.wal_dir} cannot be used ({type(exc).__name__}: {exc})"
            )
            log.error("request log of %r: %s", self.use_case.name, self.broken)
            return
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise WalInUse(
                f"use case {self.use_case.name!r}: another process holds the request log's directory {self.wal_dir}; "
                "run one server per MLOPS_SERVING_WAL_DIR"
            ) from None
        self._lock_fd = lock_fd
        left = self._recover()
        try:
            segment = self._new_segment()
            _fsync_dir(self.wal_dir)
        except OSError as exc:
            self.broken = f"the write-ahead log directory {self.wal_dir} cannot be written ({type(exc).__name__}: {exc})"
            log.error("request log of %r: %s", self.use_case.name, self.broken)
            return
        with self._lock:
            self._open, self.broken = segment, None
        if left:
            log.info(
                "request log of %r: %d rows in %d segment(s) left by a previous process, to ship",
                self.use_case.name,
                left,
                len(self._closed),
            )

    def _recover(self) -> int:
        rows = 0
        for path in sorted(self.wal_dir.glob(f"*{SEGMENT_SUFFIX}")):
            records, size = read_segment(path)
            if not records:
                path.unlink()
                continue
            count = sum(len(r["rows"]) for r in records)
            self._closed.append(
                _Segment(path.name.removesuffix(SEGMENT_SUFFIX), path, rows=count, bytes=size)
            )
            self._pending_rows += count
            self._pending_bytes += size
            rows += count
        return rows

    def _new_segment(self) -> _Segment:
        # Named by the time it opens: segments (and their batches) sort in the order they were written.
        segment_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"
        path = self.wal_dir / f"{segment_id}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        return _Segment(segment_id, path, fd=fd)

    # Appending (request threads) ------------------------------------------------------------
    @property
    def pending_rows(self) -> int:
        with self._lock:
            return self._pending_rows

    def _refusal_locked(self, rows: int, size: int) -> str | None:
        if self.broken:
            return self.broken
        if self._stopping:
            return "the server is stopping"
        if (
            self._pending_rows + rows > self.max_pending_rows
            or self._pending_bytes + size > self.max_pending_bytes
        ):
            return (
                f"the request log holds {self._pending_rows} rows ({self._pending_bytes} bytes) not yet in the lake, "
                f"at most {self.max_pending_rows} rows ({self.max_pending_bytes} bytes) may wait "
                f"(last lake error: {self.last_error}); requests are refused until it catches up"
            )
        return None

    def refusal(self) -> str | None:
        """Why a one-row request would be refused now, or None: a check before the work (append re-checks)."""
        with self._lock:
            return self._refusal_locked(1, 0)

    def append(
        self,
        *,
        request_id: str,
        received_at: dt.datetime,
        rows: list[dict[str, Any]],
        outputs: list[float],
        model_version: str,
        latency_ms: float,
    ) -> None:
        """Record one served request; return once the record is durable. LogRefused says why it cannot be."""
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware (UTC)")
        record = encode_record(
            request_id, received_at, model_version, latency_ms, rows, [float(o) for o in outputs]
        )
        with self._cond:
            self._last_record = len(record)
            refused = self._refusal_locked(len(rows), len(record))
            if refused:
                raise LogRefused(refused)
            segment = self._open
            assert segment is not None and segment.fd is not None  # not broken, not stopping: open
            try:
                _write_all(segment.fd, record)
            except OSError as exc:
                self._write_failed_locked(segment, exc)
                raise LogRefused(
                    f"the request log could not write this request ({type(exc).__name__}: {exc})"
                ) from exc
            if segment.first_at is None:
                segment.first_at = self._clock()
            segment.rows += len(rows)
            segment.bytes += len(record)
            self._pending_rows += len(rows)
            self._pending_bytes += len(record)
            self._written_seq += 1
            seq = self._written_seq
            if not self.sync:
                return
            self._cond.notify_all()  # the writer thread: a record to fsync
            deadline = time.monotonic() + DURABLE_TIMEOUT_SECONDS
            while self._synced_seq < seq and not self.broken:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LogRefused(
                        f"the request log's disk did not confirm the write within {DURABLE_TIMEOUT_SECONDS:g}s"
                    )
                self._cond.wait(remaining)
            if self._synced_seq < seq:
                raise LogRefused(f"the request log could not make this request durable: {self.broken}")

    def _write_failed_locked(self, segment: _Segment, exc: OSError) -> None:
        """A write cut short (disk full, I/O error): cut the segment back to its last whole record."""
        try:
            assert segment.fd is not None
            os.ftruncate(segment.fd, segment.bytes)
        except OSError as truncate_exc:
            self.broken = f"the write-ahead log {segment.path} cannot be written or repaired ({type(truncate_exc).__name__}: {truncate_exc})"
            self._cond.notify_all()
        log.error(
            "request log of %r: a write to %s failed: %s: %s",
            self.use_case.name,
            segment.path,
            type(exc).__name__,
            exc,
        )

    # The writer thread: fsync (group commit) and closing segments ----------------------------
    def _close_due_locked(self) -> bool:
        segment = self._open
        if segment is None or not segment.rows:
            return False
        assert segment.first_at is not None
        return segment.rows >= self.flush_rows or self._clock() - segment.first_at >= self.flush_seconds

    def sync_step(self, *, close_segment: bool = False) -> None:
        """Fsync what was written; close the open segment if due (or ``close_segment``) and open the next.

        The writer thread calls this whenever records wait; a test may call it directly.
        """
        with self._sync_lock:
            with self._cond:
                segment = self._open
                if segment is None:
                    return
                target = self._written_seq
                closing = segment.rows > 0 and (close_segment or self._stopping or self._close_due_locked())
                if closing:
                    try:
                        self._open = None if self._stopping else self._new_segment()
                    except OSError as exc:
                        self._fail_locked(
                            f"a new WAL segment cannot be created in {self.wal_dir} ({type(exc).__name__}: {exc})"
                        )
                        return
            try:
                assert segment.fd is not None
                if self.sync and (target > self._synced_seq or closing):
                    os.fsync(segment.fd)
                if closing:
                    os.close(segment.fd)
                    segment.fd = None
                    if self.sync:
                        _fsync_dir(
                            self.wal_dir
                        )  # the new segment's name, before its records count as durable
            except OSError as exc:
                # After a failed fsync the file's state is unknown: stop taking requests (503,
                # not ready) rather than answer with rows that may not be on disk.
                with self._cond:
                    self._fail_locked(
                        f"the write-ahead log {segment.path} could not be synced ({type(exc).__name__}: {exc})"
                    )
                return
            with self._cond:
                self._synced_seq = max(self._synced_seq, target)
                if closing:
                    self._closed.append(segment)
                self._cond.notify_all()
            if closing:
                self._ship_wake.set()

    def _fail_locked(self, reason: str) -> None:
        self.broken = reason
        self._cond.notify_all()
        log.error(
            "request log of %r: %s; restart the server once the disk is fixed", self.use_case.name, reason
        )

    def _run_writer(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._stopping
                    or self.broken
                    or (self.sync and self._written_seq > self._synced_seq)
                    or self._close_due_locked()
                ):
                    segment = self._open
                    wait = 1.0
                    if segment is not None and segment.first_at is not None:
                        wait = min(wait, max(0.01, segment.first_at + self.flush_seconds - self._clock()))
                    self._cond.wait(wait)
                if self.broken:
                    return
                stopping = self._stopping
            self.sync_step()
            if stopping:
                self._discard_empty_open()
                return

    def _discard_empty_open(self) -> None:
        with self._cond:
            segment, self._open = self._open, None
        if segment is not None and segment.fd is not None:  # no rows: nothing to ship
            os.close(segment.fd)
            segment.path.unlink(missing_ok=True)

    # Shipping to the lake (the shipper thread, and close) ------------------------------------
    def ship(self) -> int:
        """Ship every closed segment, oldest first; return the rows shipped. A lake error is raised
        after being recorded in ``last_error``; the segment stays on disk for the next try."""
        shipped = 0
        with self._ship_lock:
            while True:
                with self._lock:
                    segment = self._closed[0] if self._closed else None
                if segment is None:
                    return shipped
                if self._ship_deadline is not None and time.monotonic() > self._ship_deadline:
                    return shipped
                try:
                    self._ship(segment)
                except Exception as exc:
                    # The lake's errors (S3, network, disk) are many types; each is recorded, shown
                    # in /health, and the segment is shipped by a later try under the same name.
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning(
                        "request log of %r: segment %s (%d rows) not shipped yet: %s",
                        self.use_case.name,
                        segment.id,
                        segment.rows,
                        self.last_error,
                    )
                    raise
                segment.path.unlink(missing_ok=True)
                with self._lock:  # pending and shipped change together: a reader never counts a row twice
                    self._closed.remove(segment)
                    self._pending_rows -= segment.rows
                    self._pending_bytes -= segment.bytes
                    self.shipped_rows += segment.rows
                    self.shipped_segments += 1
                shipped += segment.rows
                self.last_error = None

    def _ship(self, segment: _Segment) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        records, _ = read_segment(segment.path)
        by_day: dict[dt.date, list[dict[str, Any]]] = {}
        for record in records:
            received_at = dt.datetime.fromisoformat(record["at"]).astimezone(dt.UTC)
            for i, (row, output) in enumerate(zip(record["rows"], record["out"], strict=True)):
                for column in self._datetime_columns:
                    if row.get(column) is not None:
                        row[column] = dt.datetime.fromisoformat(row[column])
                entry = {
                    REQUEST_ID: record["id"],
                    REQUEST_ROW: i,
                    RECEIVED_AT: received_at,
                    MODEL_VERSION: record["v"],
                    LATENCY_MS: record["ms"],
                    self.output: output,
                    **row,
                }
                by_day.setdefault(received_at.date(), []).append(entry)
        uc = self.use_case.name
        for day, rows in sorted(by_day.items()):
            manifest_path = layout.serving_manifest(uc, day, segment.id)
            if self.lake.exists(manifest_path):
                continue  # committed by an earlier try that died before deleting the segment
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), buffer)
            data = buffer.getvalue()
            uri = self.lake.write_bytes(layout.serving_batch(uc, day, segment.id), data)
            times = [r[RECEIVED_AT] for r in rows]
            manifest = OnlineRequestBatch(
                use_case=uc,
                day=day.isoformat(),
                batch=segment.id,
                uri=uri,
                rows=len(rows),
                requests=len({r[REQUEST_ID] for r in rows}),
                first_received_at=min(times).isoformat(),
                last_received_at=max(times).isoformat(),
                model_versions=sorted({r[MODEL_VERSION] for r in rows}),
                sha256=hashlib.sha256(data).hexdigest(),
                written_at=dt.datetime.now(dt.UTC).isoformat(),
            )
            self.lake.write_json(manifest_path, manifest)
            self.last_ship_at = manifest["written_at"]
            log.info(
                "request log of %r: wrote %d rows (%d requests) to %s",
                uc,
                len(rows),
                manifest["requests"],
                uri,
            )

    def _run_shipper(self) -> None:
        retry = SHIP_RETRY_SECONDS
        while True:
            self._ship_wake.wait(retry if self.last_error else 1.0)
            self._ship_wake.clear()
            deadline = self._ship_deadline  # set by close: drain, then stop
            try:
                self.ship()
            except Exception:  # recorded in last_error by ship; retried after a pause
                retry = min(retry * 2, SHIP_RETRY_MAX_SECONDS)
                if deadline is not None:
                    time.sleep(min(SHIP_RETRY_SECONDS, max(0.0, deadline - time.monotonic())))
            else:
                retry = SHIP_RETRY_SECONDS
            if deadline is not None and (not self._closed or time.monotonic() >= deadline):
                return

    # Starting and stopping -------------------------------------------------------------------
    def start(self) -> None:
        """Open the WAL (see :meth:`open`) and start the writer and shipper threads."""
        if self._writer is not None:
            return
        self.open()
        name = self.use_case.name
        self._writer = threading.Thread(
            target=self._run_writer, name=f"request-log-writer-{name}", daemon=True
        )
        self._shipper = threading.Thread(
            target=self._run_shipper, name=f"request-log-shipper-{name}", daemon=True
        )
        self._writer.start()
        self._shipper.start()
        self._ship_wake.set()  # what a previous process left goes first

    def close(self, timeout: float) -> int:
        """Stop taking requests, close the open segment, ship for at most ``timeout`` seconds.

        Return the rows left on disk for the next start (0: everything is in the lake).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join(max(0.0, deadline - time.monotonic()))
        elif self._open is not None:
            self.sync_step()
            self._discard_empty_open()
        self._ship_deadline = deadline
        self._ship_wake.set()
        if self._shipper is not None:
            self._shipper.join(max(0.0, deadline - time.monotonic()) + 1.0)
        else:
            with contextlib.suppress(Exception):  # recorded in last_error by ship; the rest stays on disk
                self.ship()
        left = self.pending_rows
        if left:
            log.error(
                "request log of %r: %d rows not shipped at shutdown (%s); they stay in %s for the next start",
                self.use_case.name, left, self.last_error or "out of time", self.wal_dir,
            )  # fmt: skip
        if self._lock_fd is not None and not (self._shipper and self._shipper.is_alive()):
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        return left

    # Reporting -------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Why this log makes the server not ready: it cannot write, or its bound is reached."""
        with self._lock:
            if self.broken:
                return [self.broken]
            full = self._refusal_locked(1, self._last_record)
            if full:
                return [full]
            if self._writer is not None and not self._writer.is_alive() and not self._stopping:
                return ["the request log's writer thread has stopped; restart the server"]
            if self._shipper is not None and not self._shipper.is_alive() and not self._stopping:
                return ["the request log's shipper thread has stopped; restart the server"]
        return []

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pending_rows": self._pending_rows,
                "pending_bytes": self._pending_bytes,
                "pending_segments": len(self._closed) + (1 if self._open and self._open.rows else 0),
                "max_pending_rows": self.max_pending_rows,
                "max_pending_bytes": self.max_pending_bytes,
                "shipped_rows": self.shipped_rows,
                "shipped_segments": self.shipped_segments,
                "last_ship_at": self.last_ship_at,
                "wal_dir": str(self.wal_dir),
                "broken": self.broken,
                "error": self.last_error,
            }
