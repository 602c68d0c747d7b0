"""Shared wiring for the DAG files: loading configs, the DAG every pipeline starts from, params and
the interval of a run.

Kept free of heavy imports: DAG files import this at parse time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from mlops.core import results
from mlops.core.config import ConfigError, SourceSpec, UseCase, load_use_cases
from mlops.core.settings import load_settings

if TYPE_CHECKING:
    from airflow.sdk import DAG

log = logging.getLogger(__name__)

TAG = "mlops"
# Params every pipeline's DAG declares itself; a kind's own params may not reuse these names.
INTERVAL_PARAM = "interval"
REQUEST_ID_PARAM = "request_id"


def use_cases_for_dags() -> tuple[dict[str, UseCase], dict[str, ConfigError]]:
    """All use cases; broken files are logged and returned apart so only their own DAGs break."""
    good, bad = load_use_cases(load_settings().config_dir)
    for err in bad.values():
        log.error("use case config rejected: %s", err)
    return good, bad


@dataclass(frozen=True)
class Pipeline:
    """One kind of pipeline (``data``, ``training`` ...): its DAG file declares it once and builds
    one DAG of it per use case with :meth:`dag`, then hands its builder to :meth:`register`.

    ``description`` and ``doc`` (the DAG's ``doc_md``) are templates for :meth:`str.format`:
    ``{name}`` is the use case's name, ``{model}`` its registered model, ``{use_case.<field>}``
    any of its settings, and the kind's own computed values come as ``doc_fields``.
    """

    kind: str
    description: str
    doc: str
    tag: str | None = None  # the DAG's third tag; the kind's name if unset

    def dag(
        self,
        use_case: UseCase,
        *,
        schedule: Any,
        doc_fields: Mapping[str, Any] | None = None,
        interval: str | None = None,
        params: Mapping[str, Any] | None = None,
        catchup: bool = False,
        max_active_runs: int = 1,
        retries: int = 2,
    ) -> DAG:
        """The DAG ``<use case>_<kind>`` with what every pipeline shares; the caller wires its tasks in it.

        Shared: the id, the tags ``[mlops, <use case>, tag or kind]``, the start date, the default
        args (owner, ``retries``, back-off, the failure alert), the description and ``doc_md``.
        Params, in the trigger form's order: ``interval`` when the kind works on a day
        (``interval`` says what the day means for it), the kind's own ``params``, ``request_id``.
        A kind that runs several days at once or catches up says so with ``max_active_runs`` and
        ``catchup``.
        """
        from airflow.sdk import DAG

        dag_id = use_case.dag_id(self.kind)
        reserved = sorted((params or {}).keys() & {INTERVAL_PARAM, REQUEST_ID_PARAM})
        if reserved:
            raise ValueError(
                f"DAG {dag_id}: params {reserved} are shared by every pipeline and declared by "
                "Pipeline.dag; drop them from params (for 'interval', pass interval=<what the day means>)"
            )
        shared_first = {INTERVAL_PARAM: interval_param(interval)} if interval is not None else {}
        fields = {"name": use_case.name, "model": use_case.registered_model_name, "use_case": use_case}
        return DAG(
            dag_id=dag_id,
            description=self.description.format(**fields),
            schedule=schedule,
            start_date=start_date(use_case),
            catchup=catchup,
            max_active_runs=max_active_runs,
            tags=[TAG, use_case.name, self.tag or self.kind],
            doc_md=self.doc.format(**fields, **(doc_fields or {})),
            default_args=default_args(use_case, retries=retries),
            params={**shared_first, **(params or {}), REQUEST_ID_PARAM: request_id_param()},
        )

    def register(self, namespace: dict[str, Any], build: Any) -> None:
        """Put this kind's DAG of every use case into a DAG file's globals: see :func:`register_dags`."""
        register_dags(namespace, self.kind, build)


def feed_runs(use_case: UseCase) -> dict[str, Any]:
    """How a DAG that ingests a daily delivery (the batches, a label feed) runs: on
    ``schedules.data``, one run per closed day, catching up when the config says so, several
    days at once. Keyword arguments for :meth:`Pipeline.dag`."""
    return {
        "schedule": day_timetable(use_case.schedules.data),
        "catchup": use_case.schedules.catchup,
        "max_active_runs": 4,
    }


def describe_source(source: SourceSpec) -> str:
    """Where a feed's deliveries come from, for a DAG's documentation."""
    return source.uri or f"SQL via {source.conn_id}"


def default_args(use_case: UseCase | None, *, retries: int = 2) -> dict[str, Any]:
    from mlops.orchestration.callbacks import task_failure_callback

    return {
        "owner": use_case.owner if use_case else "ml-platform",
        "retries": retries,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": task_failure_callback,
    }


def start_date(use_case: UseCase) -> dt.datetime:
    """Midnight UTC on the use case's ``schedules.start_date`` (a date, validated on load)."""
    return dt.datetime.combine(use_case.schedules.start_date, dt.time(), tzinfo=dt.UTC)


def interval_param(description: str) -> Any:
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        format="date",
        title="Interval (day)",
        description=description,
    )


def request_id_param() -> Any:
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        maxLength=128,
        pattern="^[A-Za-z0-9._:-]+$",
        title="Request id",
        description="Id of the upstream request that started this run (for tracing and de-duplication).",
    )


# The conf key the drift DAG sets on the retrain it triggers: the drift run's id.
DRIFT_RUN_KEY = "drift_run_id"


def run_cause(context: Any) -> results.Cause:
    """Who or what started this run, from Airflow's record of it (for the promotion ledger)."""
    dag_run = context["dag_run"]
    conf = dag_run.conf or {}
    user = getattr(dag_run, "triggering_user_name", None) or None
    run_type = str(getattr(dag_run, "run_type", "") or "").lower().rsplit(".", 1)[-1]
    if conf.get(DRIFT_RUN_KEY):
        return results.Cause(kind="drift", user=user, ref=str(conf[DRIFT_RUN_KEY]))
    request_id = (context.get("params") or {}).get("request_id") or conf.get("request_id")
    if request_id:
        return results.Cause(kind="upstream", user=user, ref=str(request_id))
    if run_type in {"scheduled", "backfill"}:
        return results.Cause(kind="schedule", user=None, ref=str(dag_run.run_id))
    if run_type == "asset_triggered":
        return results.Cause(kind="asset", user=None, ref=str(dag_run.run_id))
    if user:
        return results.Cause(kind="user", user=user, ref=None)
    return results.Cause(kind="unknown", user=None, ref=str(dag_run.run_id))


def optional_count_param(*, maximum: int, title: str, description: str) -> Any:
    """A whole number from 1 to ``maximum`` a run may set; empty (the default) keeps the config's."""
    from airflow.sdk import Param

    return Param(
        None, type=["null", "integer"], minimum=1, maximum=maximum, title=title, description=description
    )


@contextmanager
def fails_for_good(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` raised inside into a task failure without retries: they are final (a batch
    that broke its expectations, a version that does not exist), so trying again cannot help."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as exc:
        raise AirflowFailException(str(exc)) from None


@contextmanager
def skips_for(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` raised inside into a skipped task with their message as the reason: they
    mean there is nothing to do yet (no champion to score with), which is not a failure, so
    nothing is retried and no failure alert goes out."""
    try:
        yield
    except errors as exc:
        skip_run(str(exc))


def day_timetable(schedule: str | None) -> Any:
    """The timetable of a pipeline that works on closed days.

    A preset or cron schedule becomes a data-interval timetable: the run for day D covers
    D 00:00 to D+1 00:00 UTC, starts once D has closed (at D+1 00:00), and its
    ``data_interval_start`` is D. Catchup and ``airflow backfill`` therefore create one run per
    day, each processing its own day. (Airflow 3's default for a cron string is a trigger
    timetable whose interval is empty at the trigger time, which would name the day that has
    just begun.) ``None`` and ``@once`` are passed through.
    """
    if schedule is None or schedule == "@once":
        return schedule
    from airflow.sdk import CronDataIntervalTimetable

    from mlops.core.config import cron_for

    return CronDataIntervalTimetable(cron_for(schedule), timezone="UTC")


class ParamError(ValueError):
    """A run's param that cannot work (a day that is not a date): the run is refused, never retried."""


def latest_closed_day(now: dt.datetime | None = None) -> dt.date:
    """The last day that is over in UTC (yesterday): what a run that names no day works on."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def _param_day(value: Any, name: str = INTERVAL_PARAM) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ParamError(f"param {name!r}={value!r} is not a date (YYYY-MM-DD)") from None


def resolve_interval(context: Any) -> dt.date:
    """The day a run works on.

    In order: the ``interval`` param (manual and REST triggers); the latest day named by the
    triggering feature Asset events; the run's data interval start (scheduled runs, catchup and
    backfill: see :func:`day_timetable`); else, for a run triggered with no logical date and no
    ``interval``, the latest closed day (yesterday, UTC), logged so the run says which day it took.
    A param that is not a date fails the task at once, without retries.
    """
    with fails_for_good(ParamError):
        return _run_day(context)


def _run_day(context: Any) -> dt.date:
    value = context["params"].get(INTERVAL_PARAM)
    if value:
        return _param_day(value)
    event_days = _asset_event_days(context)
    if event_days:
        return max(event_days)
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is not None:
        return start.date()
    day = latest_closed_day()
    log.info(
        "this run names no day (no 'interval' param, no logical date, no Asset event with one): "
        "it works on the latest closed day, %s",
        day,
    )
    return day


def _asset_event_days(context: Any) -> set[dt.date]:
    days = set()
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            if event.extra and event.extra.get(INTERVAL_PARAM):
                days.add(_param_day(event.extra[INTERVAL_PARAM], "Asset event extra 'interval'"))
    return days


@dataclass(frozen=True)
class ScoringDays:
    """What a scoring run asks for: the days it names, and the last day of its catch-up window."""

    named: list[dt.date]
    up_to: dt.date


def days_to_score(context: Any) -> ScoringDays:
    """The days a scoring run names: the ``interval``/``intervals`` params, else the days named in
    the triggering feature Asset events, else the run's own data interval. A run that names none
    (a champion Asset event, a trigger with no logical date) names no day and catches up to the
    latest closed day. A param that is not a date fails the task at once, without retries."""
    with fails_for_good(ParamError):
        params = context["params"]
        days = {_param_day(v, "intervals") for v in params.get("intervals") or []}
        if params.get(INTERVAL_PARAM):
            days.add(_param_day(params[INTERVAL_PARAM]))
        days |= _asset_event_days(context)
        start = context.get("data_interval_start") or context.get("logical_date")
        if not days and start is not None:
            days.add(start.date())
        if days:
            return ScoringDays(named=sorted(days), up_to=max(days))
        up_to = latest_closed_day()
        log.info("this run names no day: it scores what is unscored up to the latest closed day, %s", up_to)
        return ScoringDays(named=[], up_to=up_to)


def skip_run(reason: str) -> NoReturn:
    """End the task as skipped with ``reason`` (in its log): nothing to do is not a failure, so no
    alert goes out. Airflow 3's task SDK cannot set the run's note, so the log carries the reason."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("nothing to do: %s", reason)
    raise AirflowSkipException(reason)


def register_dags(namespace: dict[str, Any], kind: str, build: Any) -> None:
    """Put one ``<use case>_<kind>`` DAG per use case into a DAG file's globals (``build`` may
    return None where the kind does not apply, e.g. a label feed the use case does not have).

    A use case whose config is invalid gets the stand-in from :func:`broken_config_dag` instead,
    so it breaks only its own DAGs.
    """
    good, bad = use_cases_for_dags()
    for use_case in good.values():
        dag_id = use_case.dag_id(kind)
        try:
            dag = build(use_case)
        except Exception as exc:  # any failure stays inside this use case's DAG, never the whole file
            log.exception("use case %r: building DAG %s failed", use_case.name, dag_id)
            namespace[dag_id] = broken_config_dag(dag_id, exc)
            continue
        if dag is None:  # this kind of pipeline does not apply to the use case
            continue
        if use_case.schedules.paused_reason:
            dag.is_paused_upon_creation = True
            dag.doc_md = f"**Starts paused:** {use_case.schedules.paused_reason}\n\n{dag.doc_md or ''}"
        namespace[dag_id] = dag
    for name, error in bad.items():
        namespace[f"{name}_{kind}"] = broken_config_dag(f"{name}_{kind}", error)


def broken_config_dag(dag_id: str, error: Exception) -> Any:
    """A stand-in DAG for a use case whose config is invalid: it shows and raises the error."""
    from airflow.sdk import DAG, task

    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        is_paused_upon_creation=True,
        tags=[TAG, "config-error"],
        doc_md=(
            "**This use case's configuration is invalid, or its DAG could not be built.** "
            f"Fix it and the real DAG returns.\n\n```\n{type(error).__name__}: {error}\n```"
        ),
        default_args={"owner": "ml-platform", "retries": 0},
    ) as dag:

        @task(task_id="config_error")
        def config_error() -> None:
            raise error

        config_error()
    return dag


def worker_name() -> str:
    """Which worker ran a task: ``MLOPS_WORKER_NAME`` (set per Celery worker), else the host name."""
    import socket

    return load_settings().worker_name or socket.gethostname()
