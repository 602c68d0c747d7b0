from __future__ import annotations

import datetime as dt
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


def _context(
    params: dict, events: dict | None = None, logical_date: dt.datetime | None = None
) -> dict[str, Any]:
    """A task's context as Airflow hands it over: params, triggering Asset events, the logical date."""
    from types import SimpleNamespace

    asset_events = {k: [SimpleNamespace(extra=e) for e in v] for k, v in (events or {}).items()}
    return {
        "params": params,
        "triggering_asset_events": asset_events,
        "data_interval_start": logical_date,
        "logical_date": logical_date,
    }


MAY_3 = dt.datetime(2026, 5, 3, tzinfo=dt.UTC)
TWO_EVENTS = {"a": [{"interval": "2026-01-05"}, {"interval": "2026-01-04"}]}


@pytest.mark.parametrize(
    "params, events, logical_date, named",
    [
        pytest.param(
            {"interval": "2026-01-02", "intervals": ["2026-01-01"]},
            {},
            None,
            ["2026-01-01", "2026-01-02"],
            id="params",
        ),
        pytest.param({}, TWO_EVENTS, None, ["2026-01-04", "2026-01-05"], id="asset-events"),
        pytest.param({}, {}, MAY_3, ["2026-05-03"], id="logical-date"),
        pytest.param(
            {},
            {"champion": [{"version": "1", "outcome": "promoted"}]},
            None,
            [],
            id="champion-event-names-no-day",
        ),
    ],
)
def test_days_to_score(
    params: dict, events: dict, logical_date: dt.datetime | None, named: list[str]
) -> None:
    asked = dag_support.days_to_score(_context(params, events, logical_date))
    assert [day.isoformat() for day in asked.named] == named
    assert asked.up_to == (max(asked.named) if named else dag_support.latest_closed_day())


@pytest.mark.parametrize(
    "params, events, logical_date, expected",
    [
        pytest.param({"interval": "2026-01-02"}, TWO_EVENTS, MAY_3, dt.date(2026, 1, 2), id="param-first"),
        pytest.param({}, TWO_EVENTS, MAY_3, dt.date(2026, 1, 5), id="latest-event-day"),
        pytest.param({"interval": None}, {}, MAY_3, dt.date(2026, 5, 3), id="data-interval"),
    ],
)
def test_resolve_interval(
    params: dict, events: dict, logical_date: dt.datetime | None, expected: dt.date
) -> None:
    assert dag_support.resolve_interval(_context(params, events, logical_date)) == expected


def test_a_run_with_no_logical_date_and_no_interval_works_on_yesterday() -> None:
    """What `POST /dagRuns` with `"logical_date": null` and an empty conf gets: the latest closed day."""
    before = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    day = dag_support.resolve_interval(_context({"interval": None}))
    after = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert day in {before, after}


UTC_PLUS_3 = dt.timezone(dt.timedelta(hours=3))


@pytest.mark.parametrize(
    "now, expected",
    [
        pytest.param(dt.datetime(2026, 5, 2, 0, 30, tzinfo=dt.UTC), dt.date(2026, 5, 1), id="after-midnight"),
        pytest.param(dt.datetime(2026, 5, 2, 23, 59, tzinfo=dt.UTC), dt.date(2026, 5, 1), id="late-evening"),
        pytest.param(dt.datetime(2026, 5, 2, 1, 0, tzinfo=UTC_PLUS_3), dt.date(2026, 4, 30), id="other-zone"),
    ],
)
def test_the_latest_closed_day_is_yesterday_in_utc(now: dt.datetime, expected: dt.date) -> None:
    assert dag_support.latest_closed_day(now) == expected


@pytest.mark.parametrize(
    "resolve, params, events, words",
    [
        pytest.param(
            dag_support.resolve_interval,
            {"interval": "yesterday"},
            {},
            "param 'interval'='yesterday'",
            id="interval",
        ),
        pytest.param(
            dag_support.days_to_score,
            {"intervals": ["2026-02-30"]},
            {},
            "param 'intervals'='2026-02-30'",
            id="intervals",
        ),
        pytest.param(
            dag_support.resolve_interval,
            {},
            {"a": [{"interval": "05/01/2026"}]},
            "Asset event extra",
            id="event-extra",
        ),
    ],
)
def test_a_day_that_is_not_a_date_fails_at_once_without_retry(
    resolve: Any, params: dict, events: dict, words: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=words) as raised:
        resolve(_context(params, events, MAY_3))
    assert "is not a date (YYYY-MM-DD)" in str(raised.value)


@pytest.mark.parametrize("value", ["2026-02-30", "2026-5-1", "yesterday", "20260501"])
def test_the_interval_param_refuses_a_day_that_is_not_a_date_before_the_run_exists(value: str) -> None:
    """The params are validated when a run is created: the REST API answers 400, no task runs."""
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag_support.interval_param("Day.").resolve(value)
    assert dag_support.interval_param("Day.").resolve(None) is None


def test_skips_for_turns_nothing_to_do_into_a_skip_with_the_reason() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException) as raised, dag_support.skips_for(LookupError):
        raise LookupError("no champion yet: train one from the training DAG")
    assert str(raised.value) == "no champion yet: train one from the training DAG"


def test_skips_for_lets_any_other_error_through() -> None:
    with pytest.raises(ConnectionError), dag_support.skips_for(LookupError):
        raise ConnectionError("MLflow is down")


def test_a_use_case_with_a_paused_reason_starts_paused_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
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
        pytest.param(
            "manual", "alice", {}, {}, {"kind": "user", "user": "alice", "ref": None}, id="a-person"
        ),
        pytest.param(
            "manual",
            "svc",
            {},
            {"request_id": "r-17"},
            {"kind": "upstream", "user": "svc", "ref": "r-17"},
            id="upstream",
        ),
        pytest.param(
            "manual",
            None,
            {"drift_run_id": "scheduled__d"},
            {},
            {"kind": "drift", "user": None, "ref": "scheduled__d"},
            id="drift-retrain",
        ),
        pytest.param(
            "scheduled", None, {}, {}, {"kind": "schedule", "user": None, "ref": "run-1"}, id="schedule"
        ),
        pytest.param(
            "asset_triggered", None, {}, {}, {"kind": "asset", "user": None, "ref": "run-1"}, id="new-data"
        ),
        pytest.param("manual", None, {}, {}, {"kind": "unknown", "user": None, "ref": "run-1"}, id="unknown"),
    ],
)
def test_a_run_names_who_or_what_started_it(
    run_type: str, user: str | None, conf: dict, params: dict, expected: dict
) -> None:
    from types import SimpleNamespace

    dag_run = SimpleNamespace(run_id="run-1", run_type=run_type, triggering_user_name=user, conf=conf)
    assert dag_support.run_cause({"dag_run": dag_run, "params": params}) == expected
