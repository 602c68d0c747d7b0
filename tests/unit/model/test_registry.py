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
