"""A local stand-in for Slack: incoming webhooks and the Web API's ``chat.postMessage``.

It is a real HTTP server on 127.0.0.1 (a free port, served from a background thread), so
slack-sdk's ``WebhookClient`` and ``WebClient`` talk to it exactly as they talk to Slack:

* ``POST /services/T000/B000/XXXX`` with a JSON body -> ``200 ok`` (Slack's incoming webhook);
* ``POST /api/chat.postMessage`` with a JSON or form body and ``Authorization: Bearer <token>``
  -> ``{"ok": true, "channel": ..., "ts": ...}``, or ``{"ok": false, "error": "invalid_auth"}``;
* ``POST /api/conversations.history`` -> the channel's messages since ``oldest``, newest first,
  each with the ``metadata`` it was posted with.

Every accepted message is recorded (``messages``), every request seen is counted (``requests``).
Failures can be scripted: ``fail_next(status=429, times=1, retry_after=1)`` answers 429 with a
``Retry-After`` header, ``fail_next(status=503, times=2)`` answers 503 twice, and ``down()`` /
``up()`` close and reopen the listening socket on the same port, so Slack is unreachable
(connections are refused) in between.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from mlops.core import layout
from mlops.core.lake import Lake
from mlops.core.layout import AlertBox

WEBHOOK_PATH = "/services/T000/B000/XXXX"
API_PREFIX = "/api/"


@dataclass(frozen=True)
class Failure:
    """One scripted failure: the HTTP status to answer and an optional ``Retry-After`` (seconds)."""

    status: int
    retry_after: int | None = None


@dataclass(frozen=True)
class Message:
    """A message the stand-in accepted, as Slack would have posted it."""

    via: str  # "webhook" or "chat.postMessage"
    text: str | None
    blocks: list[dict[str, Any]] | None
    channel: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    ts: str | None = None  # chat.postMessage: the message's timestamp, its id in the channel


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: SlackStandin) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the recorded messages
        return

    def do_POST(self) -> None:
        standin = self.server.standin
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        is_webhook = path == standin.webhook_path
        method = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else None
        if not is_webhook and method is None:
            self._answer(404, b"no_service", "text/plain")
            return
        standin._count_request(path)
        if standin.delay:
            time.sleep(standin.delay)  # a slow Slack: keeps concurrent senders overlapping

        failure = standin._take_failure()
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            if is_webhook:
                self._answer(failure.status, b"service_unavailable", "text/plain", headers)
            else:
                error = "ratelimited" if failure.status == 429 else "service_unavailable"
                self._answer_json(failure.status, {"ok": False, "error": error}, headers)
            return

        try:
            payload = self._parse(raw)
        except ValueError:
            if is_webhook:
                self._answer(400, b"invalid_payload", "text/plain")
            else:
                self._answer_json(200, {"ok": False, "error": "invalid_json"})
            return

        if is_webhook:
            if not payload.get("text") and not payload.get("blocks"):
                self._answer(400, b"no_text", "text/plain")
                return
            standin._record(Message("webhook", payload.get("text"), payload.get("blocks"), None, payload))
            self._answer(200, b"ok", "text/plain")
            return

        if method not in ("chat.postMessage", "conversations.history"):
            self._answer_json(200, {"ok": False, "error": "unknown_method"})
            return
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else payload.get("token")
        if token != standin.token:
            self._answer_json(200, {"ok": False, "error": "invalid_auth" if token else "not_authed"})
            return
        if method == "conversations.history":
            # Newest first, with the metadata the poster attached (Slack: include_all_metadata).
            oldest = float(payload.get("oldest") or 0)
            found = [
                {"type": "message", "text": m.text, "ts": m.ts, "metadata": m.payload.get("metadata")}
                for m in reversed(standin.messages)
                if m.channel == payload.get("channel") and float(m.ts or 0) >= oldest
            ]
            self._answer_json(200, {"ok": True, "messages": found, "has_more": False})
            return
        channel = payload.get("channel")
        if not channel:
            self._answer_json(200, {"ok": False, "error": "channel_not_found"})
            return
        if not payload.get("text") and not payload.get("blocks"):
            self._answer_json(200, {"ok": False, "error": "no_text"})
            return
        ts = f"{time.time():.6f}"
        standin._record(
            Message("chat.postMessage", payload.get("text"), payload.get("blocks"), channel, payload, ts)
        )
        self._answer_json(
            200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": payload.get("text")}}
        )

    def _parse(self, raw: bytes) -> dict[str, Any]:
        """A JSON body, or a form body (whose ``blocks`` field is itself JSON, as Slack expects)."""
        content_type = self.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" in content_type:
            form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8")).items()}
            payload: dict[str, Any] = dict(form)
            if isinstance(form.get("blocks"), str):
                payload["blocks"] = json.loads(form["blocks"])
            return payload
        parsed = json.loads(raw.decode("utf-8") or "{}")
        if not isinstance(parsed, dict):
            raise ValueError("the body is not a JSON object")
        return parsed

    def _answer(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _answer_json(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._answer(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8", headers)


class SlackStandin:
    """A local Slack for tests. Use as a context manager, or call ``start()`` and ``stop()``."""

    def __init__(self, token: str = "xoxb-test", webhook_path: str = WEBHOOK_PATH) -> None:
        self.token = token
        self.webhook_path = webhook_path
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._requests: list[str] = []
        self._failures: list[Failure] = []
        self._port = 0
        self.delay = 0.0  # seconds to wait before answering each request
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------
    def start(self) -> SlackStandin:
        """Listen (on a free port the first time, on the same port after ``down()``)."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="slack-standin",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket: from now on connections are refused."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def down(self) -> None:
        """Make Slack unreachable (the port refuses connections) until ``up()``."""
        self.stop()

    def up(self) -> None:
        """Make Slack reachable again, on the same port."""
        self.start()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the Slack stand-in has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """An incoming-webhook URL, for ``SlackTarget(webhook_url=...)``."""
        return f"{self.base_url}{self.webhook_path}"

    @property
    def api_base_url(self) -> str:
        """The Web API base, ending in ``/api/``, for ``WebClient(base_url=...)``."""
        return f"{self.base_url}{API_PREFIX}"

    # Scripting and inspection ------------------------------------------------------------
    def fail_next(self, status: int = 503, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After`` if given)."""
        with self._lock:
            self._failures.extend(Failure(status, retry_after) for _ in range(times))

    @property
    def messages(self) -> list[Message]:
        """A snapshot of the messages accepted so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[str]:
        """The paths of every request to a Slack endpoint, failed ones included."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded messages, requests and scripted failures."""
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._failures.clear()

    @contextmanager
    def unreachable(self) -> Iterator[None]:
        """``with standin.unreachable(): ...`` runs the body with Slack down, then brings it up."""
        self.down()
        try:
            yield
        finally:
            self.up()

    def _take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, message: Message) -> None:
        with self._lock:
            self._messages.append(message)

    def _count_request(self, path: str) -> None:
        with self._lock:
            self._requests.append(path)


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text of a Block Kit message: header, section text and fields, context elements."""
    texts: list[str] = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(item["text"] for item in block.get("fields", []))
        texts.extend(item["text"] for item in block.get("elements", []))
    return texts


def alert_names(lake: Lake, scope: str, box: AlertBox) -> list[str]:
    """The alert files in one box of a scope of the lake's alert outbox."""
    return lake.list(layout.alert_box(scope, box))
