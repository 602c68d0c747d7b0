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


def _pipeline(**kwargs: Any) -> dag_support.Pipeline:
    return dag_support.Pipeline(
        kind="kind",
        description="Check {name}",
        doc="### {name}: {model} over {use_case.training.window_days} days, {extra}",
        **kwargs,
    )


def test_a_pipeline_dag_carries_what_every_pipeline_shares() -> None:
    from airflow.sdk import Param

    from mlops.core.config import get_use_case

    churn = get_use_case("churn")
    dag = _pipeline().dag(
        churn,
        schedule=None,
        doc_fields={"extra": "then stop"},
        interval="Day to check.",
        params={"own": Param(1)},
    )

    assert dag.dag_id == "churn_kind"
    assert dag.tags == {"mlops", "churn", "kind"}
    assert dag.description == "Check churn"
    assert dag.doc_md == f"### churn: churn_model over {churn.training.window_days} days, then stop"
    assert dag.start_date == dag_support.start_date(churn)
    assert (dag.catchup, dag.max_active_runs) == (False, 1)
    assert list(dag.params.keys()) == ["interval", "own", "request_id"]
    assert dag.params.get_param("interval").description == "Day to check."
    assert dag.default_args["owner"] == churn.owner
    assert dag.default_args["retries"] == 2
    assert dag.default_args["on_failure_callback"]


@pytest.mark.parametrize(
    "pipeline_kwargs, dag_kwargs, attr, expected",
    [
        pytest.param({"tag": "monitoring"}, {}, "tags", {"mlops", "churn", "monitoring"}, id="tag"),
        pytest.param({}, {}, "params", ["request_id"], id="no-interval"),
        pytest.param({}, {"retries": 0}, "retries", 0, id="retries"),
        pytest.param({}, {"catchup": True, "max_active_runs": 4}, "runs", (True, 4), id="catchup-and-runs"),
    ],
)
def test_a_pipeline_overrides_a_shared_default_explicitly(
    pipeline_kwargs: dict, dag_kwargs: dict, attr: str, expected: Any
) -> None:
    from mlops.core.config import get_use_case

    dag = _pipeline(**pipeline_kwargs).dag(
        get_use_case("churn"), schedule=None, doc_fields={"extra": ""}, **dag_kwargs
    )
    seen = {
        "tags": dag.tags,
        "params": list(dag.params.keys()),
        "retries": dag.default_args["retries"],
        "runs": (dag.catchup, dag.max_active_runs),
    }[attr]
    assert seen == expected


@pytest.mark.parametrize("name", ["interval", "request_id"])
def test_a_pipeline_refuses_its_own_param_under_a_shared_name(name: str) -> None:
    from airflow.sdk import Param

    from mlops.core.config import get_use_case

    with pytest.raises(ValueError, match=f"DAG churn_kind: params \\['{name}'\\]"):
        _pipeline().dag(
            get_use_case("churn"), schedule=None, doc_fields={"extra": ""}, params={name: Param(None)}
        )


def test_pipeline_register_adds_one_dag_per_use_case() -> None:
    namespace: dict[str, Any] = {}
    pipeline = _pipeline()
    pipeline.register(namespace, lambda uc: pipeline.dag(uc, schedule=None, doc_fields={"extra": ""}))
    assert sorted(namespace) == ["churn_kind", "delivery_time_kind"]
    assert all(dag.dag_id == dag_id for dag_id, dag in namespace.items())


def test_feed_runs_follow_the_data_schedule_and_the_catchup_setting() -> None:
    from mlops.core.config import get_use_case

    churn = get_use_case("churn")
    runs = dag_support.feed_runs(churn)
    assert runs["catchup"] is churn.schedules.catchup
    assert runs["max_active_runs"] > 1
    assert runs["schedule"] == dag_support.day_timetable(churn.schedules.data)


class _Final(Exception):
    pass


def test_fails_for_good_turns_a_final_error_into_a_failure_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised, dag_support.fails_for_good(_Final):
        raise _Final("version 9 does not exist")
    assert str(raised.value) == "version 9 does not exist"


def test_fails_for_good_lets_any_other_error_through_to_be_retried() -> None:
    with pytest.raises(ConnectionError), dag_support.fails_for_good(_Final):
        raise ConnectionError("S3 is down")


@pytest.mark.parametrize(
    "value, accepted",
    [
        pytest.param(None, True, id="empty-keeps-config"),
        pytest.param(1, True, id="minimum"),
        pytest.param(200, True, id="maximum"),
        pytest.param(0, False, id="zero"),
        pytest.param(201, False, id="above-maximum"),
        pytest.param("5", False, id="string"),
    ],
)
def test_optional_count_param(value: Any, accepted: bool) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    param = dag_support.optional_count_param(maximum=200, title="Candidates", description="How many.")
    if accepted:
        assert param.resolve(value) == value
    else:
        with pytest.raises(ParamValidationError):
            param.resolve(value)


@pytest.mark.parametrize(
    ("run_type", "user", "conf", "params", "expected"),
    [
        pytest.param("manual", "alice", {}, {}, {"kind": "user", "user": "alice", "ref": None}, id="a-person"),
        pytest.param(
            "manual", "svc", {}, {"request_id": "r-17"}, {"kind": "upstream", "user": "svc", "ref": "r-17"}, id="upstream"
        ),
        pytest.param(
            "manual", None, {"drift_run_id": "scheduled__d"}, {}, {"kind": "drift", "user": None, "ref": "scheduled__d"},
            id="drift-retrain",
        ),
        pytest.param("scheduled", None, {}, {}, {"kind": "schedule", "user": None, "ref": "run-1"}, id="schedule"),
        pytest.param("asset_triggered", None, {}, {}, {"kind": "asset", "user": None, "ref": "run-1"}, id="new-data"),
        pytest.param("manual", None, {}, {}, {"kind": "unknown", "user": None, "ref": "run-1"}, id="unknown"),
    ],
)
def test_a_run_names_who_or_what_started_it(run_type: str, user: str | None, conf: dict, params: dict, expected: dict) -> None:
    from types import SimpleNamespace

    dag_run = SimpleNamespace(run_id="run-1", run_type=run_type, triggering_user_name=user, conf=conf)
    assert dag_support.run_cause({"dag_run": dag_run, "params": params}) == expected
