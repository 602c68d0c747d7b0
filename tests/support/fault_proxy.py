"""A TCP proxy in front of a real service, whose faults a test switches while work is under way.

The proxy listens on 127.0.0.1 (a free port, served by background threads) and forwards bytes to
the real service, so the code under test talks to S3, MLflow, PostgreSQL or Slack exactly as in
production, only through the proxy's address. Modes, switched at any time from the test:

* ``pass`` (``pass_through()``): forward bytes both ways.
* ``down`` (``down()``): reset every live connection and every new one; nothing is forwarded.
* ``http_5xx`` (``http_5xx()``, or ``http_error(status, body)`` for any answer): every HTTP
  request is answered by the proxy itself (``HTTP/1.1 503 Service Unavailable``) and the
  connection closed; the service never sees it.
* ``stall`` (``stall()``): HTTP requests are read and never answered (the client times out).
* ``drop_after`` (``drop_after(n_bytes)``): every connection, live or new, is cut once it has sent
  ``n_bytes`` more towards the service (for PostgreSQL: a connection lost in the middle of a COPY).

``drop_existing()`` cuts the live connections and leaves the mode as it is.

For HTTP services (``http=True``) the proxy reads the request framing (``Content-Length`` or
chunked bodies), so a fault can start at one precise request: ``fail_request(match, how=...)``
fires once, on the first request ``match`` accepts, and either refuses it (``down``), answers it
503 (``http_5xx``) or forwards it and cuts the connection as the answer comes back
(``lose_response``: the service did the work, the client never hears of it). Each request is
recorded in ``requests`` with what the proxy did with it; ``fired`` lists the requests that
started a fault, so a test can check that its fault really happened mid-work.

Limits: plain TCP and HTTP/1.1 (no TLS); a request whose answer is to be lost must not wait for
``100 Continue`` (that interim answer would already count as the answer).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "down", "http_5xx", "stall", "drop_after"]
FaultKind = Literal["down", "http_5xx", "lose_response"]
REASONS = {
    400: "Bad Request",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class HttpRequest:
    """The head of one HTTP request seen by the proxy (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Seen:
    """A request and what the proxy did with it: forwarded, refused, answered, stalled, lost."""

    method: str
    target: str
    outcome: str


@dataclass
class _Trigger:
    match: Callable[[HttpRequest], bool]
    how: FaultKind
    then: Mode


@dataclass(eq=False)
class _Conn:
    client: socket.socket
    upstream: socket.socket | None = None
    budget: int | None = None  # bytes that may still go to the service (drop_after)
    lose_response: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self, *, reset: bool) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            # shutdown() first: it wakes the pump blocked in recv() on this socket (close() alone
            # would wait for it). A reset only stops reading, so closing sends RST, not FIN: the
            # peer sees "connection reset", as when a host dies.
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class _Reader:
    """Buffered reads from the client, for HTTP framing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def until(self, sep: bytes) -> bytes | None:
        while sep not in self.buf:
            if not self._fill():
                return None
        end = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def exactly(self, n: int, sink: Callable[[bytes], None]) -> bool:
        while n > 0:
            if not self.buf and not self._fill():
                return False
            piece, self.buf = self.buf[:n], self.buf[n:]
            sink(piece)
            n -= len(piece)
        return True


class FaultProxy:
    """A proxy to ``upstream`` (host, port). Use as a context manager, or ``start()`` and ``stop()``."""

    def __init__(self, upstream: tuple[str, int], *, http: bool = False, name: str = "proxy") -> None:
        self.upstream = upstream
        self.http = http
        self.name = name
        self._lock = threading.Lock()
        self._mode: Mode = "pass"
        self._error = (503, b"Service Unavailable")
        self._budget: int | None = None
        self._trigger: _Trigger | None = None
        self._conns: set[_Conn] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.requests: list[Seen] = []
        self.fired: list[HttpRequest] = []
        self.bytes_up = 0  # bytes forwarded to the service
        self.connections = 0  # connections accepted
        self.cut = 0  # connections cut by a fault

    # Lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"fault-proxy-{self.name}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        self._close_all(reset=False)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError(f"fault proxy {self.name!r} has not been started")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for HTTP services."""
        return f"http://127.0.0.1:{self.port}"

    # Modes -------------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return self._mode

    def pass_through(self) -> None:
        """Forward everything again (live connections keep working; a ``drop_after`` is disarmed)."""
        with self._lock:
            self._mode, self._budget, self._trigger = "pass", None, None
            for conn in self._conns:
                conn.budget = None

    def down(self) -> None:
        """The service is gone: live connections are reset, new ones are reset on accept."""
        with self._lock:
            self._mode = "down"
        self._close_all(reset=True)

    def http_5xx(self) -> None:
        """Every HTTP request from now on is answered ``503 Service Unavailable`` by the proxy."""
        self.http_error(503, b"Service Unavailable")

    def http_error(self, status: int, body: bytes) -> None:
        """Every HTTP request from now on is answered ``status`` with ``body`` by the proxy."""
        self._require_http("http_error")
        with self._lock:
            self._mode, self._error = "http_5xx", (status, body)

    def stall(self) -> None:
        """HTTP requests from now on are read and never answered."""
        self._require_http("stall")
        with self._lock:
            self._mode = "stall"

    def drop_after(self, n_bytes: int) -> None:
        """Cut every connection, live or new, once it has sent ``n_bytes`` more to the service."""
        with self._lock:
            self._mode, self._budget = "drop_after", n_bytes
            for conn in self._conns:
                conn.budget = n_bytes

    def drop_existing(self) -> None:
        """Cut the live connections (reset); new ones follow the current mode."""
        self._close_all(reset=True)

    def fail_request(
        self, match: Callable[[HttpRequest], bool], *, how: FaultKind, then: Mode | None = None
    ) -> None:
        """Start a fault at the first request ``match`` accepts (once).

        ``how``: ``down`` refuses it (and resets every connection), ``http_5xx`` answers it 503,
        ``lose_response`` forwards it and cuts the connection when the answer starts. Afterwards
        the proxy is in mode ``then`` (default: ``down``, ``http_5xx``, or ``pass`` after a lost
        response).
        """
        self._require_http("fail_request")
        default: dict[FaultKind, Mode] = {"down": "down", "http_5xx": "http_5xx", "lose_response": "pass"}
        with self._lock:
            self._trigger = _Trigger(match, how, then or default[how])

    def _require_http(self, what: str) -> None:
        if not self.http:
            raise ValueError(f"fault proxy {self.name!r}: {what} needs an HTTP proxy (http=True)")

    # Serving -----------------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            conn = _Conn(client)
            with self._lock:
                self.connections += 1
                if self._mode == "down":
                    self.cut += 1
                    conn.close(reset=True)
                    continue
                conn.budget = self._budget
                self._conns.add(conn)
            threading.Thread(
                target=self._handle, args=(conn,), daemon=True, name=f"fault-proxy-{self.name}-conn"
            ).start()

    def _handle(self, conn: _Conn) -> None:
        try:
            try:
                conn.upstream = socket.create_connection(self.upstream, timeout=10)
                conn.upstream.settimeout(None)
            except OSError:
                conn.close(reset=True)
                return
            threading.Thread(target=self._pump_down, args=(conn,), daemon=True).start()
            if self.http:
                self._pump_http_up(conn)
            else:
                self._pump_raw_up(conn)
        except OSError:
            conn.close(reset=True)
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _pump_raw_up(self, conn: _Conn) -> None:
        while True:
            data = conn.client.recv(65536)
            if not data:
                self._half_close(conn)
                return
            if not self._send_up(conn, data):
                return

    def _pump_down(self, conn: _Conn) -> None:
        try:
            while True:
                assert conn.upstream is not None
                data = conn.upstream.recv(65536)
                if not data:
                    break
                if conn.lose_response:
                    self._cut(conn)
                    return
                conn.client.sendall(data)
        except OSError:
            pass
        conn.close(reset=False)

    def _send_up(self, conn: _Conn, data: bytes) -> bool:
        """Forward to the service within the connection's budget; False if the connection was cut."""
        assert conn.upstream is not None
        with self._lock:
            budget = conn.budget
            allowed = len(data) if budget is None else min(len(data), budget)
            if budget is not None:
                conn.budget = budget - allowed
            self.bytes_up += allowed
        if allowed:
            conn.upstream.sendall(data[:allowed])
        if allowed < len(data):
            self._cut(conn)
            return False
        return True

    def _half_close(self, conn: _Conn) -> None:
        with contextlib.suppress(OSError):
            assert conn.upstream is not None
            conn.upstream.shutdown(socket.SHUT_WR)

    def _cut(self, conn: _Conn) -> None:
        with self._lock:
            self.cut += 1
        conn.close(reset=True)

    def _close_all(self, *, reset: bool, keep: _Conn | None = None) -> None:
        with self._lock:
            conns = [c for c in self._conns if c is not keep]
            self._conns.difference_update(conns)
            if reset:
                self.cut += len(conns)
        for conn in conns:
            conn.close(reset=reset)

    # HTTP ----------------------------------------------------------------------------------
    def _decide(self, conn: _Conn, request: HttpRequest) -> str:
        """What to do with one request: forward, refuse, answer, stall or lose (its response)."""
        with self._lock:
            trigger = self._trigger
            if trigger is not None and trigger.match(request):
                self._trigger = None
                self.fired.append(request)
                self._mode = trigger.then
                if trigger.then == "http_5xx" and trigger.how == "http_5xx":
                    self._error = (503, b"Service Unavailable")
                outcome = {"down": "refused", "http_5xx": "answered", "lose_response": "lost"}[trigger.how]
            else:
                outcome = {
                    "pass": "forwarded",
                    "drop_after": "forwarded",
                    "down": "refused",
                    "http_5xx": "answered",
                    "stall": "stalled",
                }[self._mode]
            self.requests.append(Seen(request.method, request.target, outcome))
            mode = self._mode
        if mode == "down":  # a lost request is forwarded first: its connection is cut when the answer comes
            self._close_all(reset=True, keep=conn if outcome == "lost" else None)
        return outcome

    def _pump_http_up(self, conn: _Conn) -> None:
        reader = _Reader(conn.client)
        while True:
            head = reader.until(b"\r\n\r\n")
            if head is None:
                self._half_close(conn)
                return
            request = _parse_head(head)
            outcome = self._decide(conn, request)
            if outcome == "refused":
                self._cut(conn)
                return
            if outcome == "stalled":
                while reader.until(b"\r\n\r\n") is not None:  # hold the connection, answer nothing
                    pass
                conn.close(reset=False)
                return
            if outcome == "answered":
                # Take the whole body first, so the client reads the answer rather than a broken
                # pipe; a client waiting for "100 Continue" gets it, as from a server that fails later.
                if request.headers.get("expect", "").lower() == "100-continue":
                    conn.client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                _body(reader, request, lambda _piece: None)
                status, body = self._error
                answer = (
                    f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode() + (b"" if request.method == "HEAD" else body)  # an answer to HEAD has no body
                conn.client.sendall(answer)
                conn.close(reset=False)
                return
            if outcome == "lost":
                conn.lose_response = True
            sent = True

            def forward(piece: bytes) -> None:
                nonlocal sent
                if sent and not self._send_up(conn, piece):
                    sent = False

            forward(head)
            if not _body(reader, request, forward) or not sent:
                return


def _parse_head(head: bytes) -> HttpRequest:
    lines = head.decode("latin-1").split("\r\n")
    method, target, *_ = [*lines[0].split(" "), "", ""]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return HttpRequest(method, target, headers)


def _body(reader: _Reader, request: HttpRequest, sink: Callable[[bytes], None]) -> bool:
    """Pass the request's body to ``sink`` as it arrives; False if the client went away."""
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        while True:
            size_line = reader.until(b"\r\n")
            if size_line is None:
                return False
            sink(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    line = reader.until(b"\r\n")
                    if line is None:
                        return False
                    sink(line)
                    if line == b"\r\n":
                        return True
            if not reader.exactly(size + 2, sink):  # the chunk and its CRLF
                return False
    return reader.exactly(int(request.headers.get("content-length", "0") or 0), sink)
