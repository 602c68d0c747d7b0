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
