"""The demo's Slack: a local stand-in when none is configured, and the story prints what it got."""

from __future__ import annotations

import pytest

from mlops.core.alerts import post_to_slack, slack_target
from mlops.dev.demo import _show_slack, _slack_for_the_demo

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*churn*: roc_auc fell to 0.61"}}]


def test_with_no_slack_the_demo_posts_to_a_stand_in_and_prints_each_alert(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOPS_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_SLACK", raising=False)
    slack = _slack_for_the_demo()
    try:
        assert slack is not None
        target = slack_target()  # what the service's tasks read: the stand-in's webhook
        assert target is not None and target.webhook_url == slack.webhook_url
        post_to_slack(target, "Drift detected in churn", BLOCKS)
        _show_slack(slack)
    finally:
        slack.stop()
        monkeypatch.delenv("MLOPS_SLACK_WEBHOOK_URL", raising=False)
    out = capsys.readouterr().out
    assert "no Slack configured" in out
    assert "received 1 message(s)" in out
    assert "> Drift detected in churn" in out and "| *churn*: roc_auc fell to 0.61" in out


def test_a_configured_webhook_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T/B/X")
    assert _slack_for_the_demo() is None
