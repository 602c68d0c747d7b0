"""Alerts to Slack with an outbox, so an alert is never lost.

An alert is first written to ``alerts/<scope>/outbox/<id>.json`` in the lake, then delivered
with slack-sdk (Block Kit). 429 and 5xx answers and connection errors are retried with backoff
by slack-sdk's retry handlers; if Slack stays unreachable the alert stays in the outbox and is
sent by the next run. Delivered alerts move to ``alerts/<scope>/sent/``. Alert ids are
deterministic, so re-running a task never sends the same alert twice.

Where Slack is configured, in this order:
1. ``MLOPS_SLACK_WEBHOOK_URL``: an incoming-webhook URL.
2. The Airflow connection ``MLOPS_SLACK_CONN_ID`` (default ``mlops_slack``): ``host`` an
   incoming-webhook URL, or ``password`` a bot token with ``extra`` ``{"channel": "#mlops",
   "base_url": "https://slack.com/api/"}`` for ``chat.postMessage``.
With neither, an alert is written to the task log once, with a warning, and stays in the outbox
until Slack is configured: "no Slack connection" may be a secrets backend that could not be read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import AlertDelivery

if TYPE_CHECKING:
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackTarget:
    webhook_url: str | None = None
    token: str | None = None
    channel: str | None = None
    base_url: str | None = None

    def describe(self) -> str:
        # Never log the URL or token: both are secrets.
        return "incoming webhook" if self.webhook_url else f"chat.postMessage to {self.channel}"


def slack_target() -> SlackTarget | None:
    from mlops.core.settings import load_settings

    settings = load_settings()
    if settings.slack_webhook_url:
        return SlackTarget(webhook_url=settings.slack_webhook_url)
    conn_id = settings.slack_conn_id
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        # Only "there is no such connection" means Slack is not configured; any other error
        # (a secrets backend down, a broken connection) propagates and the alerts stay pending.
        log.debug("no Slack connection %r", conn_id)
        return None
    extra = conn.extra_dejson or {}
    if conn.password:
        channel = extra.get("channel")
        if not channel:
            raise ValueError(f"Slack connection {conn_id!r} has a token but no 'channel' in its extra")
        return SlackTarget(token=conn.password, channel=channel, base_url=extra.get("base_url"))
    host = conn.host or ""
    if host.startswith("http"):
        return SlackTarget(webhook_url=host)
    raise ValueError(f"Slack connection {conn_id!r} needs a webhook URL as host or a bot token as password")


def _retry_handlers(*, connection: bool = True) -> list[Any]:
    """slack-sdk's retries: 429 and 5xx answers, and (unless ``connection`` is off) connection errors.

    A connection error may come after Slack took the message (the answer was lost), so the Web API
    transport does not resend blindly: :func:`deliver_pending` looks in the channel first.
    """
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    handlers: list[Any] = [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=3),
    ]
    return [ConnectionErrorRetryHandler(max_retry_count=2), *handlers] if connection else handlers


class SlackDeliveryError(RuntimeError):
    pass


class SlackConnectionLost(SlackDeliveryError):
    """The request may or may not have reached Slack (a timeout, a cut connection)."""


METADATA_EVENT = "mlops_alert"


def _slack_errors() -> tuple[type[Exception], ...]:
    """What a request to Slack raises when Slack refused it or the network failed: slack-sdk's own
    errors, and the transport's (URLError, timeouts and reset connections are OSErrors; a cut
    response is an HTTPException). Anything else is a fault of ours and propagates."""
    from http.client import HTTPException

    from slack_sdk.errors import SlackClientError

    return (SlackClientError, OSError, HTTPException)


def post_to_slack(
    target: SlackTarget, text: str, blocks: list[dict[str, Any]], alert: str | None = None
) -> None:
    """Send one message; raise SlackDeliveryError if Slack did not accept it after retries.

    Through the Web API the message carries the alert id as message metadata, so a sender
    taking over from one that died can look in the channel for it (:func:`already_posted`).
    """
    if target.webhook_url:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(target.webhook_url, timeout=10, retry_handlers=_retry_handlers())
        try:
            response = client.send(text=text, blocks=blocks)
        except _slack_errors() as exc:  # URLError, timeouts: Slack unreachable
            raise SlackDeliveryError(f"Slack webhook unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise SlackDeliveryError(f"Slack webhook answered {response.status_code}: {response.body[:200]}")
        return
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    web = WebClient(token=target.token, timeout=10, retry_handlers=_retry_handlers(connection=False))
    if target.base_url:
        web.base_url = target.base_url
    try:
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"alert_id": alert}} if alert else None
        web.chat_postMessage(channel=target.channel or "", text=text, blocks=blocks, metadata=metadata)
    except SlackApiError as exc:
        raise SlackDeliveryError(f"chat.postMessage failed: {exc.response.get('error')}") from exc
    except _slack_errors() as exc:
        raise SlackConnectionLost(f"Slack API unreachable: {type(exc).__name__}") from exc


def already_posted(target: SlackTarget, alert: str, since: dt.datetime) -> bool:
    """Whether the channel holds a message of ``alert`` posted since ``since`` (Web API only).

    An incoming webhook cannot read its channel, so there the answer is False and a sender
    that died between posting and recording is followed by a second post (at least once).
    The bot needs the ``channels:history`` scope. If the history cannot be read the answer is
    unknown, so nothing may be posted: SlackDeliveryError, and the alert stays in the outbox.
    """
    if target.token is None:
        return False
    from slack_sdk import WebClient

    web = WebClient(token=target.token, timeout=10, retry_handlers=_retry_handlers())
    if target.base_url:
        web.base_url = target.base_url
    try:
        history = web.conversations_history(
            channel=target.channel or "",
            oldest=f"{since.timestamp():.6f}",
            include_all_metadata=True,
            limit=200,
        )
    except (
        _slack_errors()
    ) as exc:  # SlackApiError (missing scope), connection errors: unknown, so do not post
        raise SlackDeliveryError(
            f"could not read the channel to see whether the alert is there already: {type(exc).__name__}"
        ) from exc
    for message in history.get("messages") or []:
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == METADATA_EVENT
            and (metadata.get("event_payload") or {}).get("alert_id") == alert
        ):
            return True
    return False


def recent_alert(
    lake: Lake, scope: str, kind: str, key: str, value: Any, within_hours: float, now: dt.datetime
) -> dict[str, Any] | None:
    """The latest alert of ``kind`` whose ``fields[key] == value`` queued within the window, if any."""
    latest = None
    boxes: tuple[layout.AlertBox, ...] = ("outbox", "sent")
    for box in boxes:
        for name in lake.list(layout.alert_box(scope, box)):
            record = lake.read_json(layout.alert_record(scope, box, name))
            if record.get("kind") != kind or (record.get("fields") or {}).get(key) != value:
                continue
            queued = dt.datetime.fromisoformat(record["queued_at"])
            if now - queued < dt.timedelta(hours=within_hours) and (
                latest is None or record["queued_at"] > latest["queued_at"]
            ):
                latest = record
    return latest


def alert_id(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{kind}-{digest}"


def enqueue(lake: Lake, scope: str, alert: dict[str, Any]) -> bool:
    """Put an alert in the outbox unless it is already there or already sent. Returns True if new."""
    aid = alert["id"]
    if lake.exists(layout.alert_record(scope, "sent", aid)) or lake.exists(
        layout.alert_record(scope, "outbox", aid)
    ):
        return False
    record = dict(alert, queued_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    lake.write_json(layout.alert_record(scope, "outbox", aid), record)
    return True


CLAIM_LEASE = dt.timedelta(minutes=10)  # longer than any send with its retries (about 2 minutes)


def _claim(lake: Lake, scope: str, aid: str, now: dt.datetime) -> tuple[int, dt.datetime | None] | None:
    """Claim an alert for sending: the attempt claimed and when the dead sender before it claimed
    it (None if this is the first attempt); None if another sender holds the alert.

    A claim is a lake object created exclusively (``Lake.create``), so of a failure callback and
    a drift run sending the same outbox at once, exactly one posts. A claim older than
    ``CLAIM_LEASE`` belongs to a sender that died; the next attempt number takes over.
    """
    prefix = f"{aid}."
    attempts = [
        int(n[len(prefix) :].split(".")[0])
        for n in lake.list(layout.alert_claims(scope))
        if n.startswith(prefix)
    ]
    attempt, taken_over = max(attempts, default=0), None
    if attempt:
        held = lake.read_json(layout.alert_claim(scope, aid, attempt))
        taken_over = dt.datetime.fromisoformat(held["claimed_at"])
        if now - taken_over < CLAIM_LEASE:
            return None
    claim = {"alert": aid, "attempt": attempt + 1, "claimed_at": now.isoformat(timespec="seconds")}
    if not lake.create(layout.alert_claim(scope, aid, attempt + 1), json.dumps(claim).encode()):
        return None
    return attempt + 1, taken_over


def _release(lake: Lake, scope: str, aid: str) -> None:
    prefix = f"{aid}."
    for name in lake.list(layout.alert_claims(scope)):
        if name.startswith(prefix):
            lake.delete(f"{layout.alert_claims(scope)}/{name}")


def deliver_pending(
    lake: Lake,
    scope: str,
    target: SlackTarget | None = None,
    *,
    use_config: bool = True,
    now: dt.datetime | None = None,
) -> AlertDelivery:
    """Send every alert in the outbox of ``scope``; keep those Slack did not take for the next run.

    Claim, then act: each alert is claimed before it is posted and recorded as sent before its
    claim is released, so two senders never post the same alert. A sender killed after Slack took
    the message but before recording it leaves a claim that expires after ``CLAIM_LEASE``; the
    sender that takes over first looks for the message in the channel (Web API) and records it as
    sent if it is there. Through an incoming webhook it cannot look, and posts again: an alert is
    never lost, and a duplicate is possible only in that window.
    """
    if target is None and use_config:
        target = slack_target()
    if target is None:
        from mlops.core.settings import load_settings

        conn_id = load_settings().slack_conn_id
    delivered, pending = [], []
    for name in lake.list(layout.alert_box(scope, "outbox")):
        if not name.endswith(".json"):
            continue
        aid = name.removesuffix(".json")
        claim = _claim(lake, scope, aid, now or dt.datetime.now(dt.UTC))
        if claim is None:
            log.info("alert %s is being sent by another task; left to it", aid)
            pending.append(aid)
            continue
        taken_over = claim[1]
        if lake.exists(layout.alert_record(scope, "sent", name)):  # sent while we listed
            lake.delete(layout.alert_record(scope, "outbox", name))
            _release(lake, scope, aid)
            continue
        if not lake.exists(layout.alert_record(scope, "outbox", name)):
            _release(lake, scope, aid)
            continue
        record = lake.read_json(layout.alert_record(scope, "outbox", name))
        if target is None:
            # Slack not found is not proof that nobody should hear of it (Airflow reports a
            # secrets backend it could not read as "not defined"): log it once, keep it pending.
            if not record.get("logged_at"):
                log.warning(
                    "Slack is not configured (set MLOPS_SLACK_WEBHOOK_URL or the %r connection); alert logged "
                    "and kept in the outbox until Slack is configured:\n%s",
                    conn_id,
                    record["text"],
                )
                record["logged_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                lake.write_json(layout.alert_record(scope, "outbox", name), record)
            _release(lake, scope, aid)
            pending.append(record["id"])
            continue
        try:
            # A sender that died after posting, or an attempt whose answer was lost (a timeout after
            # Slack took it), may have posted already: look in the channel first (Web API only).
            unsure = taken_over or (
                dt.datetime.fromisoformat(record["queued_at"]) if record.get("attempts") else None
            )
            if unsure is not None and already_posted(target, aid, unsure - dt.timedelta(minutes=1)):
                log.warning(
                    "alert %s is already in the channel (an earlier attempt posted it); recorded now", aid
                )
            else:
                try:
                    post_to_slack(target, record["text"], record["blocks"], alert=aid)
                except SlackConnectionLost:
                    # Through the Web API: did it get there before the connection was lost? Look, then retry once.
                    since = dt.datetime.fromisoformat(record["queued_at"]) - dt.timedelta(minutes=1)
                    if not already_posted(target, aid, since):
                        post_to_slack(target, record["text"], record["blocks"], alert=aid)
        except SlackDeliveryError as exc:
            log.error("alert %s not delivered, kept in the outbox for the next run: %s", record["id"], exc)
            record["attempts"] = record.get("attempts", 0) + 1
            record["last_error"] = str(exc)
            lake.write_json(layout.alert_record(scope, "outbox", name), record)
            _release(lake, scope, aid)
            pending.append(record["id"])
            continue
        faults.point("alert")
        record["delivered_to"] = f"slack ({target.describe()})"
        log.info("alert %s delivered to Slack", record["id"])
        record["delivered_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        lake.write_json(layout.alert_record(scope, "sent", name), record)
        lake.delete(layout.alert_record(scope, "outbox", name))
        _release(lake, scope, aid)
        delivered.append(record["id"])
    return AlertDelivery(delivered=delivered, pending=pending, slack_configured=target is not None)


# Messages -------------------------------------------------------------------------------------


def drift_alert(
    *,
    use_case: str,
    day: str,
    model_version: str | None,
    drift_share: float,
    dataset_drift: bool,
    top_features: list[tuple[str, float]],
    reasons: list[str],
    report_uri: str,
) -> dict[str, Any]:
    title = f":warning: Drift detected in '{use_case}' on {day}"
    feats = "\n".join(f"• `{name}`: {score:.3f}" for name, score in top_features) or "none"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Use case*\n{use_case}"},
                {"type": "mrkdwn", "text": f"*Model version*\n{model_version or 'none'}"},
                {"type": "mrkdwn", "text": f"*Drift share*\n{drift_share:.0%}"},
                {"type": "mrkdwn", "text": f"*Dataset drift*\n{'yes' if dataset_drift else 'no'}"},
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*Top drifted features* (drift score)\n{feats}"},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "*Why*\n" + "\n".join(f"• {r}" for r in reasons)},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Report: {report_uri}"}]},
    ]
    text = (
        f"Drift detected in '{use_case}' on {day}: model version {model_version or 'none'}; "
        f"{'; '.join(reasons) or 'no reason given'}; drift share {drift_share:.0%}; "
        f"top features: {', '.join(n for n, _ in top_features) or 'none'}; report: {report_uri}"
    )
    return {
        "id": alert_id("drift", use_case, day),
        "kind": "drift",
        "use_case": use_case,
        "text": text,
        "blocks": blocks,
        "fields": {
            "use_case": use_case,
            "model_version": model_version,
            "drift_share": drift_share,
            "top_features": top_features,
            "report_uri": report_uri,
            "reasons": reasons,
        },
    }


def failure_alert(
    *, dag_id: str, run_id: str, task_id: str, error: str, log_url: str | None
) -> dict[str, Any]:
    text = f"Airflow run failed: {dag_id} / {run_id} (task {task_id}): {error[:500]}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f":x: {dag_id} failed"[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Run*\n{run_id}"},
                {"type": "mrkdwn", "text": f"*Task*\n{task_id}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{error[:2500]}```"}},
    ]
    if log_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{log_url}|Task log>"}]})
    return {"id": alert_id("failure", dag_id, run_id), "kind": "task_failure", "text": text, "blocks": blocks}


def deliver_failure_alerts(lake: Lake, target: SlackTarget | None = None) -> dict[str, AlertDelivery]:
    """Retry every task-failure alert Slack has not taken yet, whatever DAG it came from."""
    results = {}
    for dag_id in lake.list(layout.failure_scopes_root()):
        results[dag_id] = deliver_pending(lake, layout.failure_scope(dag_id), target)
    return results
