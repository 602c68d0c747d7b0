"""The model server's request log: every served request, in the lake, in batches.

Each row of a served request becomes one log row: the request id and the row's index in the
request, when the request was received (UTC), the request columns as checked, the score (or
prediction) returned, the model version that computed it and the request's latency. Rows are
buffered in memory and written as one Parquet file per batch when ``flush_rows`` rows are
waiting, when the oldest waiting row is ``flush_seconds`` old, and when the server stops.

A batch goes to ``serving/<uc>/<day>/<batch>.parquet`` (the day it was received, UTC; a batch
that spans midnight is split), moved into place atomically, then its manifest
``serving/<uc>/<day>/_manifests/<batch>.json`` is written last: readers see committed batches
only. Batch names are unique per flush (time + random suffix), so several servers may log the
same use case. A failed write keeps the batch, under the same name, for the next flush; while
the unwritten rows exceed ``max_pending_rows`` the server refuses new requests (503) rather than
serve traffic it cannot record or grow without bound.

The record itself (its columns, the batch manifest) and its reader are in
``mlops.data.request_log``: monitoring reads the log without depending on the server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class _Batch:
    name: str
    day: dt.date
    rows: list[dict[str, Any]]


class RequestLog:
    """Buffers served rows and writes them to the lake in batches (see the module docstring)."""

    def __init__(
        self,
        lake: Lake,
        use_case: UseCase,
        *,
        flush_rows: int,
        flush_seconds: float,
        max_pending_rows: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lake, self.use_case = lake, use_case
        self.schema = log_schema(use_case)
        self.output = output_column(use_case)
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.max_pending_rows = max_pending_rows or max(100 * flush_rows, 100_000)
        self._clock = clock
        self._lock = threading.Lock()  # the buffer and the sealed batches
        self._write_lock = threading.Lock()  # one flush at a time
        self._buffer: list[dict[str, Any]] = []
        self._oldest: float | None = None
        self._sealed: list[_Batch] = []
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.written_batches = 0
        self.last_flush_at: str | None = None
        self.last_error: str | None = None

    # Appending (request threads) ------------------------------------------------------------
    @property
    def pending_rows(self) -> int:
        with self._lock:
            return len(self._buffer) + sum(len(b.rows) for b in self._sealed)

    def accepting(self) -> bool:
        """False while the unwritten rows exceed ``max_pending_rows`` (the lake is not taking them)."""
        return self.pending_rows < self.max_pending_rows

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
        """Add one served request (its checked rows and what was returned for each)."""
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware (UTC)")
        entries = [
            {
                REQUEST_ID: request_id,
                REQUEST_ROW: i,
                RECEIVED_AT: received_at,
                MODEL_VERSION: model_version,
                LATENCY_MS: latency_ms,
                self.output: float(output),
                **row,
            }
            for i, (row, output) in enumerate(zip(rows, outputs, strict=True))
        ]
        with self._lock:
            if not self._buffer:
                self._oldest = self._clock()
            self._buffer.extend(entries)
            if len(self._buffer) >= self.flush_rows:
                self._due.set()

    # Writing (the flusher thread, and close) -------------------------------------------------
    def _seal(self) -> None:
        """Move the buffer into batches, one per day received; called with ``_lock`` held."""
        if not self._buffer:
            return
        by_day: dict[dt.date, list[dict[str, Any]]] = {}
        for entry in self._buffer:
            by_day.setdefault(entry[RECEIVED_AT].astimezone(dt.UTC).date(), []).append(entry)
        for day, rows in sorted(by_day.items()):
            first = min(r[RECEIVED_AT] for r in rows).astimezone(dt.UTC)
            name = f"{first:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"
            self._sealed.append(_Batch(name, day, rows))
        self._buffer, self._oldest = [], None

    def due(self) -> bool:
        with self._lock:
            if len(self._buffer) >= self.flush_rows or self._sealed:
                return True
            return self._oldest is not None and self._clock() - self._oldest >= self.flush_seconds

    def flush(self) -> int:
        """Write everything buffered; return the rows written. A failed batch stays for the next flush."""
        with self._write_lock:
            with self._lock:
                self._seal()
                batches = list(self._sealed)
            written = 0
            for batch in batches:
                try:
                    self._write(batch)
                except Exception as exc:
                    # The lake's errors (S3, network, disk) are many types; each is recorded, shown
                    # in /health, and the batch is written by the next flush under the same name.
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("request log of %r: batch %s (%d rows) not written yet", self.use_case.name, batch.name, len(batch.rows))
                    raise
                with self._lock:
                    self._sealed.remove(batch)
                written += len(batch.rows)
            if batches:
                self.last_error = None
            return written

    def _write(self, batch: _Batch) -> OnlineRequestBatch:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(batch.rows, schema=self.schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        data = buffer.getvalue()
        uc = self.use_case.name
        uri = self.lake.write_bytes(layout.serving_batch(uc, batch.day, batch.name), data)
        times = [r[RECEIVED_AT] for r in batch.rows]
        manifest = OnlineRequestBatch(
            use_case=uc,
            day=batch.day.isoformat(),
            batch=batch.name,
            uri=uri,
            rows=len(batch.rows),
            requests=len({r[REQUEST_ID] for r in batch.rows}),
            first_received_at=min(times).isoformat(),
            last_received_at=max(times).isoformat(),
            model_versions=sorted({r[MODEL_VERSION] for r in batch.rows}),
            sha256=hashlib.sha256(data).hexdigest(),
            written_at=dt.datetime.now(dt.UTC).isoformat(),
        )
        self.lake.write_json(layout.serving_manifest(uc, batch.day, batch.name), manifest)
        self.written_rows += len(batch.rows)
        self.written_batches += 1
        self.last_flush_at = manifest["written_at"]
        log.info("request log of %r: wrote %d rows (%d requests) to %s", uc, manifest["rows"], manifest["requests"], uri)
        return manifest

    def _try_flush(self) -> bool:
        """:meth:`flush`, with a failure kept in ``last_error`` (and logged by flush) instead of raised."""
        try:
            self.flush()
        except Exception:
            return False
        return True

    # The flusher thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Flush in the background whenever a batch is due."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"request-log-{self.use_case.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = min(1.0, self.flush_seconds)
        while not self._stop.is_set():
            self._due.wait(tick)
            self._due.clear()
            if self._stop.is_set() or not self.due():
                continue
            if not self._try_flush():
                self._stop.wait(tick)  # the lake is failing: try again after a pause, not in a loop

    def close(self) -> int:
        """Stop the flusher and write what is left; return the rows that could not be written."""
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._try_flush()
        left = self.pending_rows
        if left:
            log.error("request log of %r: %d rows could not be written at shutdown: %s", self.use_case.name, left, self.last_error)
        return left

    def status(self) -> dict[str, Any]:
        pending = self.pending_rows
        return {
            "pending_rows": pending,
            "max_pending_rows": self.max_pending_rows,
            "written_rows": self.written_rows,
            "written_batches": self.written_batches,
            "last_flush_at": self.last_flush_at,
            "error": self.last_error,
        }

