"""The registry answers "no champion" only when the registry says so; an outage is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.model import registry
from tests.integration.stack import free_port


def test_a_missing_alias_or_model_is_none(fresh_home: Path) -> None:
    client = registry.configure_mlflow()
    assert registry.alias_version(client, "no_such_model", registry.CHAMPION) is None
    client.create_registered_model("churn_model")
    assert registry.alias_version(client, "churn_model", registry.CHAMPION) is None


def test_an_unreachable_registry_is_an_error_not_no_champion(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = MlflowClient(tracking_uri=dead, registry_uri=dead)
    with pytest.raises(Exception) as raised:
        registry.alias_version(client, "churn_model", registry.CHAMPION)
    assert not registry.alias_missing(raised.value)


def _two_versions(fresh_home: Path) -> tuple:
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake

    client = registry.configure_mlflow()
    use_case = get_use_case("churn")
    name = use_case.registered_model_name
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=f"file://{fresh_home}/models/m")
    client.set_registered_model_alias(name, registry.CHAMPION, "2")
    return client, use_case, get_lake()


def test_rollback_is_explicit_and_running_it_twice_changes_nothing(fresh_home: Path) -> None:
    client, use_case, lake = _two_versions(fresh_home)
    name = use_case.registered_model_name

    entry = registry.rollback(use_case, lake, version="1", reason="v2 mis-scores new customers", dag_id="churn_rollback", airflow_run_id="manual__1")
    assert entry["outcome"] == "rollback" and "v2 mis-scores new customers" in entry["reason"]
    assert registry.alias_version(client, name, registry.CHAMPION).version == 1
    assert registry.alias_version(client, name, registry.PREVIOUS).version == 2

    again = registry.rollback(use_case, lake, version="1", reason="clicked twice", dag_id="churn_rollback", airflow_run_id="manual__2")
    assert again["outcome"] == "rollback_noop"
    assert registry.alias_version(client, name, registry.CHAMPION).version == 1  # not toggled back to v2

    registry.rollback(use_case, lake, version="1", reason="clicked twice", dag_id="churn_rollback", airflow_run_id="manual__2")  # a task retry
    assert [h["airflow_run_id"] for h in registry.promotion_history(lake, "churn")] == ["manual__1", "manual__2"]


@pytest.mark.parametrize(
    "version, reason, message",
    [
        pytest.param("9", "bad model", "no version '9'", id="unknown-version"),
        pytest.param("1", "  ", "needs a reason", id="no-reason"),
    ],
)
def test_rollback_refuses_what_it_cannot_do(fresh_home: Path, version: str, reason: str, message: str) -> None:
    client, use_case, lake = _two_versions(fresh_home)
    with pytest.raises(registry.RollbackRefused, match=message):
        registry.rollback(use_case, lake, version=version, reason=reason, dag_id="churn_rollback", airflow_run_id="manual__x")
    assert registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION).version == 2
    assert registry.promotion_history(lake, "churn") == []
