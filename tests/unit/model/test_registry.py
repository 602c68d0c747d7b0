"""The registry answers "no champion" only when the registry says so; an outage is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.results import PromotionRecord
from mlops.model import registry, tags
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


def _decided(use_case: str, version: str, outcome: str, champion_before: str | None) -> PromotionRecord:
    return PromotionRecord(
        use_case=use_case,
        decided_at=registry.now_iso(),
        version=version,
        champion_before=champion_before,
        outcome=outcome,  # type: ignore[typeddict-item]
        promoted=outcome == "promoted",
        reason="the gate's reason",
        airflow_dag_id="churn_training",
        airflow_run_id=f"scheduled__v{version}",
    )


def _two_versions(fresh_home: Path) -> tuple:
    """v1 and v2 each promoted by the gate in turn (v2 is the champion); v3 rejected, v4 never judged."""
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake

    client = registry.configure_mlflow()
    use_case = get_use_case("churn")
    lake = get_lake()
    name = use_case.registered_model_name
    client.create_registered_model(name)
    for _ in range(4):
        mv = client.create_model_version(name, source=f"file://{fresh_home}/models/m")
        client.set_model_version_tag(name, mv.version, tags.FEATURE_VERSION, use_case.feature_version)
    for version, outcome, before in (("1", "promoted", None), ("2", "promoted", "1"), ("3", "rejected", "2")):
        registry.record_decision(lake, "churn", _decided("churn", version, outcome, before))
    client.set_registered_model_alias(name, registry.CHAMPION, "2")
    return client, use_case, lake


def test_rollback_is_explicit_and_running_it_twice_changes_nothing(fresh_home: Path) -> None:
    client, use_case, lake = _two_versions(fresh_home)
    name = use_case.registered_model_name

    entry = registry.rollback(
        use_case,
        lake,
        version="1",
        reason="v2 mis-scores new customers",
        dag_id="churn_rollback",
        airflow_run_id="manual__1",
    )
    assert entry["outcome"] == "rollback" and "v2 mis-scores new customers" in entry["reason"]
    assert registry.alias_version(client, name, registry.CHAMPION).version == 1
    assert registry.alias_version(client, name, registry.PREVIOUS).version == 2

    again = registry.rollback(
        use_case,
        lake,
        version="1",
        reason="clicked twice",
        dag_id="churn_rollback",
        airflow_run_id="manual__2",
    )
    assert again["outcome"] == "rollback_noop"
    assert registry.alias_version(client, name, registry.CHAMPION).version == 1  # not toggled back to v2

    registry.rollback(
        use_case,
        lake,
        version="1",
        reason="clicked twice",
        dag_id="churn_rollback",
        airflow_run_id="manual__2",
    )  # a task retry
    rollbacks = [
        h["airflow_run_id"]
        for h in registry.promotion_history(lake, "churn")
        if h["outcome"].startswith("rollback")
    ]
    assert rollbacks == ["manual__1", "manual__2"]


@pytest.mark.parametrize(
    "version, reason, message",
    [
        pytest.param("9", "bad model", "no version '9'", id="unknown-version"),
        pytest.param("1", "  ", "needs a reason", id="no-reason"),
        pytest.param(
            "3", "v3 looked fine", "v3 of 'churn_model' was never the champion", id="rejected-by-the-gate"
        ),
        pytest.param("4", "try the newest", "v4 of 'churn_model' was never the champion", id="never-judged"),
        pytest.param(
            "1",
            "features changed",
            "cannot roll back to v1 was trained on feature version 0000",
            id="features-changed",
        ),
    ],
)
def test_rollback_refuses_what_it_cannot_do(
    fresh_home: Path, version: str, reason: str, message: str
) -> None:
    client, use_case, lake = _two_versions(fresh_home)
    name = use_case.registered_model_name
    if reason == "features changed":  # v1 was trained before a feature or its code changed
        client.set_model_version_tag(name, "1", tags.FEATURE_VERSION, "0000")
    before = registry.promotion_history(lake, "churn")
    with pytest.raises(registry.RollbackRefused, match=message):
        registry.rollback(
            use_case,
            lake,
            version=version,
            reason=reason,
            dag_id="churn_rollback",
            airflow_run_id="manual__x",
        )
    assert registry.alias_version(client, name, registry.CHAMPION).version == 2  # nothing moved
    assert registry.promotion_history(lake, "churn") == before  # and nothing was recorded
