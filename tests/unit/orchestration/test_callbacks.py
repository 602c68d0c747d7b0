"""The failure callback every task carries: one alert per failed DAG run, and it never raises."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.lake import Lake
from mlops.dev.slack_standin import SlackStandin, alert_names, block_texts
from mlops.orchestration.callbacks import task_failure_callback
from tests.support.fixtures import slack_standin_fixture  # noqa: F401

SCOPE = layout.failure_scope("churn_training")


@pytest.fixture(autouse=True)
def _no_slack_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLOPS_SLACK_WEBHOOK_URL", "AIRFLOW_CONN_MLOPS_SLACK", "MLOPS_SLACK_CONN_ID"):
        monkeypatch.delenv(name, raising=False)


def outbox(lake: Lake, scope: str) -> list[str]:
    return alert_names(lake, scope, "outbox")


def sent(lake: Lake, scope: str) -> list[str]:
    return alert_names(lake, scope, "sent")


def failure_context(task_id: str, error: Exception) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="churn_training", run_id="scheduled__2026-01-05", task_id=task_id, log_url=None
    )
    return {"ti": ti, "exception": error}


def test_task_failure_callback_alerts_once_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_standin: SlackStandin
) -> None:
    monkeypatch.setenv("MLOPS_LAKE_URI", f"file://{tmp_path}/lake")
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", slack_standin.webhook_url)

    task_failure_callback(failure_context("train", RuntimeError("boom")))
    task_failure_callback(failure_context("evaluate", RuntimeError("boom again")))

    [message] = slack_standin.messages
    assert message.text is not None
    assert "churn_training" in message.text
    assert "scheduled__2026-01-05" in message.text
    assert "task train" in message.text
    assert "RuntimeError: boom" in message.text
    assert message.blocks is not None
    assert any("RuntimeError: boom" in text for text in block_texts(message.blocks))
    lake = Lake(f"file://{tmp_path}/lake")
    assert outbox(lake, SCOPE) == []
    assert len(sent(lake, SCOPE)) == 1


def test_task_failure_callback_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_LAKE_URI", f"file://{tmp_path}/lake")
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SLACK", json.dumps({"conn_type": "slack", "password": "xoxb-1"}))

    task_failure_callback(failure_context("train", RuntimeError("boom")))  # misconfigured Slack: logged

    lake = Lake(f"file://{tmp_path}/lake")
    assert len(outbox(lake, SCOPE)) == 1
