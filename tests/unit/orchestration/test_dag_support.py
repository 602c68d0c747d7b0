from __future__ import annotations

from typing import Any

import pytest

from mlops.core.config import UseCase
from mlops.orchestration import dag_support


def test_a_dag_that_fails_to_build_becomes_its_own_stand_in() -> None:
    def build(use_case: UseCase) -> Any:
        if use_case.name == "churn":
            raise ValueError("timetable refused the schedule")
        from airflow.sdk import DAG

        return DAG(dag_id=use_case.dag_id("kind"), schedule=None, tags=["mlops"])

    namespace: dict[str, Any] = {}
    dag_support.register_dags(namespace, "kind", build)

    broken = namespace["churn_kind"]
    assert "config-error" in broken.tags
    assert "ValueError: timetable refused the schedule" in broken.doc_md
    assert "config-error" not in namespace["delivery_time_kind"].tags


@pytest.mark.parametrize(
    "params, events, expected",
    [
        pytest.param({"interval": "2026-01-02", "intervals": ["2026-01-01"]}, {}, ["2026-01-01", "2026-01-02"], id="params"),
        pytest.param({}, {"a": [{"interval": "2026-01-05"}, {"interval": "2026-01-04"}]}, ["2026-01-04", "2026-01-05"], id="asset-events"),
    ],
)
def test_days_to_score(params: dict, events: dict, expected: list[str]) -> None:
    from types import SimpleNamespace

    context = {
        "params": params,
        "triggering_asset_events": {k: [SimpleNamespace(extra=e) for e in v] for k, v in events.items()},
    }
    assert dag_support.days_to_score(context) == expected


def test_a_use_case_with_a_paused_reason_starts_paused_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import shutil
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[3]
    config = tmp_path / "config"
    shutil.copytree(root / "config", config)
    raw = yaml.safe_load((config / "use_cases" / "delivery_time.yaml").read_text())
    raw["schedules"]["paused_reason"] = "no upstream feed is connected yet"
    (config / "use_cases" / "delivery_time.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))

    def build(use_case: UseCase) -> Any:
        from airflow.sdk import DAG

        return DAG(dag_id=use_case.dag_id("kind"), schedule=None, doc_md="what it does")

    namespace: dict[str, Any] = {}
    dag_support.register_dags(namespace, "kind", build)
    paused = namespace["delivery_time_kind"]
    assert paused.is_paused_upon_creation is True
    assert paused.doc_md.startswith("**Starts paused:** no upstream feed is connected yet")
    assert namespace["churn_kind"].is_paused_upon_creation is not True


def test_a_kind_that_does_not_apply_adds_no_dag() -> None:
    namespace: dict[str, Any] = {}
    dag_support.register_dags(namespace, "labels", lambda use_case: None)
    assert namespace == {}
