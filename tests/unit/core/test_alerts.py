"""Alerts to Slack, over real HTTP through slack-sdk, against the local Slack stand-in."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mlops.core.alerts import (
    CLAIM_LEASE,
    SlackTarget,
    deliver_pending,
    drift_alert,
    enqueue,
    slack_target,
)
from mlops.core.lake import Lake
from mlops.dev.slack_standin import Message, SlackStandin, alert_names, block_texts
from tests.support.fixtures import slack_standin_fixture  # noqa: F401

SCOPE = "churn"
REPORT_URI = "file:///lake/reports/churn/2026-01-05/drift.html"


@pytest.fixture(autouse=True)
def _no_slack_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets exactly the Slack configuration it needs."""
    for name in ("MLOPS_SLACK_WEBHOOK_URL", "AIRFLOW_CONN_MLOPS_SLACK", "MLOPS_SLACK_CONN_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


def make_drift_alert(day: str = "2026-01-05") -> dict[str, Any]:
    return drift_alert(
        use_case="churn",
        day=day,
        model_version="7",
        drift_share=0.42,
        dataset_drift=True,
        top_features=[("tenure", 0.31), ("monthly_charges", 0.27)],
        reasons=["drift share 42% is above the 30% threshold"],
        report_uri=REPORT_URI,
    )


def webhook(standin: SlackStandin) -> SlackTarget:
    return SlackTarget(webhook_url=standin.webhook_url)


def web_api(standin: SlackStandin, token: str = "xoxb-test") -> SlackTarget:
    return SlackTarget(token=token, channel="#mlops", base_url=standin.api_base_url)


TRANSPORTS = [
    pytest.param(webhook, id="webhook"),
    pytest.param(web_api, id="chat.postMessage"),
]


def outbox(lake: Lake, scope: str = SCOPE) -> list[str]:
    return alert_names(lake, scope, "outbox")


def sent(lake: Lake, scope: str = SCOPE) -> list[str]:
    return alert_names(lake, scope, "sent")


def assert_drift_message(message: Message) -> None:
    assert message.blocks is not None
    texts = block_texts(message.blocks)
    assert "*Use case*\nchurn" in texts
    assert "*Model version*\n7" in texts
    assert "*Drift share*\n42%" in texts
    assert "*Dataset drift*\nyes" in texts
    features = next(t for t in texts if t.startswith("*Top drifted features*"))
    assert "`tenure`: 0.310" in features
    assert "`monthly_charges`: 0.270" in features
    assert f"Report: {REPORT_URI}" in texts
    assert message.text is not None and "churn" in message.text and REPORT_URI in message.text


# Delivery ------------------------------------------------------------------------------------


def test_drift_alert_delivered_by_webhook(lake: Lake, slack_standin: SlackStandin) -> None:
    alert = make_drift_alert()
    assert enqueue(lake, SCOPE, alert)
    assert outbox(lake) == [f"{alert['id']}.json"]

    result = deliver_pending(lake, SCOPE, SlackTarget(webhook_url=slack_standin.webhook_url))

    assert result == {"delivered": [alert["id"]], "pending": [], "slack_configured": True}
    [message] = slack_standin.messages
    assert message.via == "webhook"
    assert_drift_message(message)
    assert outbox(lake) == []
    assert sent(lake) == [f"{alert['id']}.json"]
    record = lake.read_json(f"alerts/{SCOPE}/sent/{alert['id']}.json")
    assert record["delivered_to"] == "slack (incoming webhook)"
    assert record["delivered_at"]


def test_drift_alert_delivered_by_chat_post_message(lake: Lake, slack_standin: SlackStandin) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)

    target = SlackTarget(token="xoxb-test", channel="#mlops", base_url=slack_standin.api_base_url)
    result = deliver_pending(lake, SCOPE, target)

    assert result["delivered"] == [alert["id"]]
    [message] = slack_standin.messages
    assert message.via == "chat.postMessage"
    assert message.channel == "#mlops"
    assert_drift_message(message)
    assert outbox(lake) == []
    record = lake.read_json(f"alerts/{SCOPE}/sent/{alert['id']}.json")
    assert record["delivered_to"] == "slack (chat.postMessage to #mlops)"


def test_wrong_token_keeps_the_alert_in_the_outbox(lake: Lake, slack_standin: SlackStandin) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)

    result = deliver_pending(lake, SCOPE, web_api(slack_standin, token="xoxb-wrong"))

    assert result["pending"] == [alert["id"]]
    assert slack_standin.messages == []
    record = lake.read_json(f"alerts/{SCOPE}/outbox/{alert['id']}.json")
    assert record["attempts"] == 1
    assert "invalid_auth" in record["last_error"]
    assert "xoxb-wrong" not in record["last_error"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_same_alert_is_sent_once(lake: Lake, slack_standin: SlackStandin, transport: Any) -> None:
    target = transport(slack_standin)
    assert enqueue(lake, SCOPE, make_drift_alert()) is True
    assert enqueue(lake, SCOPE, make_drift_alert()) is False  # already in the outbox

    first = deliver_pending(lake, SCOPE, target)
    assert enqueue(lake, SCOPE, make_drift_alert()) is False  # already sent
    second = deliver_pending(lake, SCOPE, target)

    assert len(first["delivered"]) == 1
    assert second == {"delivered": [], "pending": [], "slack_configured": True}
    assert len(slack_standin.messages) == 1
    assert len(slack_standin.requests) == 1


def test_other_days_are_other_alerts(lake: Lake, slack_standin: SlackStandin) -> None:
    assert enqueue(lake, SCOPE, make_drift_alert("2026-01-05"))
    assert enqueue(lake, SCOPE, make_drift_alert("2026-01-06"))

    result = deliver_pending(lake, SCOPE, webhook(slack_standin))

    assert len(result["delivered"]) == 2
    assert len(slack_standin.messages) == 2


# Slack failing -------------------------------------------------------------------------------


@pytest.mark.slow  # real retries with backoff: `make test` runs it, `make test-fast` does not
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rate_limited_then_accepted(lake: Lake, slack_standin: SlackStandin, transport: Any) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)
    slack_standin.fail_next(status=429, times=1, retry_after=1)

    result = deliver_pending(lake, SCOPE, transport(slack_standin))

    assert result["delivered"] == [alert["id"]]
    assert len(slack_standin.requests) == 2  # the 429, then the retry slack-sdk made after Retry-After
    assert len(slack_standin.messages) == 1
    assert outbox(lake) == []


@pytest.mark.slow  # real retries with backoff: `make test` runs it, `make test-fast` does not
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_errors_then_accepted(lake: Lake, slack_standin: SlackStandin, transport: Any) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)
    slack_standin.fail_next(status=503, times=2)

    result = deliver_pending(lake, SCOPE, transport(slack_standin))

    assert result["delivered"] == [alert["id"]]
    assert len(slack_standin.requests) == 3
    assert len(slack_standin.messages) == 1
    assert outbox(lake) == []


@pytest.mark.slow  # real retries with backoff: `make test` runs it, `make test-fast` does not
def test_slack_down_for_a_whole_run(lake: Lake, slack_standin: SlackStandin) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)
    target = webhook(slack_standin)

    slack_standin.down()
    result = deliver_pending(lake, SCOPE, target)

    assert result == {"delivered": [], "pending": [alert["id"]], "slack_configured": True}
    assert outbox(lake) == [f"{alert['id']}.json"]
    assert sent(lake) == []
    record = lake.read_json(f"alerts/{SCOPE}/outbox/{alert['id']}.json")
    assert record["attempts"] == 1
    assert "unreachable" in record["last_error"]
    assert slack_standin.webhook_url not in record["last_error"]  # the webhook URL is a secret

    slack_standin.up()
    again = deliver_pending(lake, SCOPE, target)

    assert again["delivered"] == [alert["id"]]
    assert again["pending"] == []
    [message] = slack_standin.messages
    assert_drift_message(message)
    assert outbox(lake) == []
    assert lake.read_json(f"alerts/{SCOPE}/sent/{alert['id']}.json")["attempts"] == 1


def test_no_slack_configured_logs_the_alert_once_and_keeps_it(
    lake: Lake, slack_standin: SlackStandin, caplog: pytest.LogCaptureFixture
) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)

    with caplog.at_level(logging.WARNING, logger="mlops.core.alerts"):
        result = deliver_pending(lake, SCOPE, None, use_config=False)
        again = deliver_pending(lake, SCOPE, None, use_config=False)

    # "No Slack connection" may be a secrets backend Airflow could not read: nothing is lost.
    assert result == again == {"delivered": [], "pending": [alert["id"]], "slack_configured": False}
    assert outbox(lake) == [f"{alert['id']}.json"] and sent(lake) == []
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "mlops.core.alerts"
    ]
    assert len(warnings) == 1 and "Slack is not configured" in warnings[0]
    assert REPORT_URI in warnings[0]  # the alert itself is in the log
    # Once Slack is configured, the kept alert goes out.
    assert deliver_pending(lake, SCOPE, webhook(slack_standin))["delivered"] == [alert["id"]]
    assert len(slack_standin.messages) == 1


# Claims: two senders at once -------------------------------------------------------------------


def test_concurrent_senders_post_each_alert_once(lake: Lake, slack_standin: SlackStandin) -> None:
    """A failure callback and a drift run's send_alerts flushing the same outbox at the same time."""
    import threading

    alerts = [make_drift_alert(day) for day in ("2026-01-05", "2026-01-06", "2026-01-07")]
    for alert in alerts:
        enqueue(lake, SCOPE, alert)
    slack_standin.delay = 0.3
    results: list[Any] = []
    senders = [
        threading.Thread(target=lambda: results.append(deliver_pending(lake, SCOPE, webhook(slack_standin))))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()

    assert len(slack_standin.messages) == 3
    assert sorted(a for r in results for a in r["delivered"]) == sorted(a["id"] for a in alerts)
    assert outbox(lake) == [] and sent(lake) == sorted(f"{a['id']}.json" for a in alerts)
    assert lake.list(f"alerts/{SCOPE}/claims") == []


def test_an_alert_claimed_by_a_live_sender_is_left_to_it(lake: Lake, slack_standin: SlackStandin) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)
    claimed = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    assert lake.create(
        f"alerts/{SCOPE}/claims/{alert['id']}.1.json", json.dumps({"claimed_at": claimed}).encode()
    )

    result = deliver_pending(lake, SCOPE, webhook(slack_standin))

    assert result["pending"] == [alert["id"]] and slack_standin.messages == []
    assert outbox(lake) == [f"{alert['id']}.json"]


def test_the_claim_of_a_dead_sender_expires(lake: Lake, slack_standin: SlackStandin) -> None:
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)
    claimed = (dt.datetime.now(dt.UTC) - CLAIM_LEASE - dt.timedelta(seconds=1)).isoformat(timespec="seconds")
    assert lake.create(
        f"alerts/{SCOPE}/claims/{alert['id']}.1.json", json.dumps({"claimed_at": claimed}).encode()
    )

    result = deliver_pending(lake, SCOPE, webhook(slack_standin))

    assert result["delivered"] == [alert["id"]] and len(slack_standin.messages) == 1
    assert lake.list(f"alerts/{SCOPE}/claims") == []


# Configuration -------------------------------------------------------------------------------


def test_slack_target_from_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", "http://127.0.0.1:1/services/T/B/X")
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SLACK", json.dumps({"conn_type": "slack", "password": "xoxb-1"}))

    assert slack_target() == SlackTarget(webhook_url="http://127.0.0.1:1/services/T/B/X")


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        pytest.param(
            {
                "conn_type": "slack",
                "password": "xoxb-1",
                "extra": {"channel": "#ml", "base_url": "http://127.0.0.1:1/api/"},
            },
            SlackTarget(token="xoxb-1", channel="#ml", base_url="http://127.0.0.1:1/api/"),
            id="bot-token",
        ),
        pytest.param(
            {"conn_type": "slack", "host": "http://127.0.0.1:1/services/T/B/X"},
            SlackTarget(webhook_url="http://127.0.0.1:1/services/T/B/X"),
            id="webhook-host",
        ),
    ],
)
def test_slack_target_from_airflow_connection(
    monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], expected: SlackTarget
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SLACK", json.dumps(connection))

    assert slack_target() == expected


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        pytest.param(
            {"conn_type": "slack", "password": "xoxb-1"}, "no 'channel'", id="token-without-channel"
        ),
        pytest.param(
            {"conn_type": "slack", "host": "hooks.example"}, "needs a webhook URL", id="no-url-no-token"
        ),
    ],
)
def test_slack_target_misconfigured_connection(
    monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SLACK", json.dumps(connection))

    with pytest.raises(ValueError, match="mlops_slack") as raised:
        slack_target()
    assert message in str(raised.value)


def test_slack_target_connection_id_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SLACK_CONN_ID", "team_slack")
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_SLACK", json.dumps({"conn_type": "slack", "host": "http://h/x"}))

    assert slack_target() == SlackTarget(webhook_url="http://h/x")


def test_slack_target_not_configured() -> None:
    assert slack_target() is None


def test_a_slack_lookup_error_is_not_read_as_no_slack(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secrets backend that refuses access: the error propagates and the alert stays pending."""
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "tests.support.secrets.DenyingSecretsBackend")
    from airflow.sdk import configuration

    monkeypatch.setattr(configuration, "_secrets_backend_cache", {})
    alert = make_drift_alert()
    enqueue(lake, SCOPE, alert)

    with pytest.raises(Exception, match="denied"):
        deliver_pending(lake, SCOPE)
    assert outbox(lake) == [f"{alert['id']}.json"] and sent(lake) == []
