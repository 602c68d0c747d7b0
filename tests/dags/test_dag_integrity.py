"""DAG integrity and policy: everything parses, and every DAG and task follows the platform's rules.

Policy tests are parametrized, one case per DAG (id ``<dag_id>``) and one per task (id
``<dag_id>/<task_id>``), so one failure does not hide the next. What a task is checked for
follows from what it is (it publishes an asset, it is mapped, it waits, it asks a person, it
triggers another DAG), never from its name: a new task is held to the rules as soon as it exists.

Two bags are checked: the DAGs of the shipped config, and those of a variant use case that turns
on the optional branches (a label feed of its own, a sensor waiting for the batch).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
# boto3 is not listed: creating any Asset makes Airflow load the installed providers' URI
# handlers, and the Amazon provider's imports boto3. Our own modules never import it at parse
# time (ruff's TID253 bans that in dags/ and plugins/).
HEAVY = ["pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently", "pyarrow", "matplotlib"]
KINDS = ["data", "training", "scoring", "drift", "rollback"]
TAG = "mlops"
VARIANT = "variant"
# A sensor that waits longer than this holds a run open for days: fail and alert instead.
LONGEST_WAIT = timedelta(days=1)


def _with_config(config_dir: Path | None) -> Any:
    """The DagBag of dags/ parsed with ``MLOPS_CONFIG_DIR`` set to ``config_dir`` (None: the shipped)."""
    from airflow.dag_processing.dagbag import DagBag

    before = os.environ.get("MLOPS_CONFIG_DIR")
    if config_dir is not None:
        os.environ["MLOPS_CONFIG_DIR"] = str(config_dir)
    try:
        return DagBag(str(DAGS))
    finally:
        if before is None:
            os.environ.pop("MLOPS_CONFIG_DIR", None)
        else:
            os.environ["MLOPS_CONFIG_DIR"] = before


def _variant_config(base: Path) -> Path:
    """A config holding one use case with every optional branch: a label feed, a sensor waiting for the batch."""
    from mlops.core.config import load_use_case_file
    from mlops.data.validation import derive_suite

    config = base / "config"
    (config / "use_cases").mkdir(parents=True)
    (config / "expectations").mkdir()
    raw = copy.deepcopy(yaml.safe_load((ROOT / "config" / "use_cases" / "churn.yaml").read_text()))
    raw["name"] = VARIANT
    raw["source"]["uri"] = "{landing}/" + VARIANT + "/{interval}.csv"
    raw["source"]["on_missing"] = "wait"
    raw["schema"]["columns"].pop(raw["schema"].pop("target"))
    raw["schema"].pop("label_delay_days", None)
    raw["labels"] = {
        "source": {
            "kind": "files",
            "format": "csv",
            "uri": "{landing}/" + VARIANT + "_labels/{interval}.csv",
        },
        "entity": "customer_id",
        "event_time": "event_time",
        "label": "churned",
        "columns": {
            "customer_id": {"type": "int"},
            "event_time": {"type": "datetime"},
            "churned": {"type": "int", "min": 0, "max": 1},
        },
    }
    path = config / "use_cases" / f"{VARIANT}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    for feed in load_use_case_file(path).feeds:
        (config / "expectations" / f"{feed.stream}.json").write_text(json.dumps(derive_suite(feed)))
    return config


# Parsed once, at collection: the parametrized cases below are the DAGs and tasks themselves.
# The variant's config lives in the session's own MLOPS_HOME (tests/conftest.py), never in the checkout.
SHIPPED = _with_config(None)
VARIANT_BAG = _with_config(_variant_config(Path(os.environ["MLOPS_HOME"]) / "dag-policy-variant"))
BAGS = {"shipped": SHIPPED, "variant": VARIANT_BAG}
ALL_DAGS = {**SHIPPED.dags, **VARIANT_BAG.dags}
assert not SHIPPED.dags.keys() & VARIANT_BAG.dags.keys(), "the variant's DAG ids must not hide shipped ones"
PUBLISHED = {o.uri for dag in ALL_DAGS.values() for t in dag.tasks for o in t.outlets if hasattr(o, "uri")}


def dag_cases() -> list[Any]:
    return [pytest.param(dag, id=dag_id) for dag_id, dag in sorted(ALL_DAGS.items())]


def task_cases(select: Any = None) -> list[Any]:
    """One case per task (of the DAGs in both bags), those ``select`` keeps when given."""
    return [
        pytest.param(dag, task, id=f"{dag_id}/{task.task_id}")
        for dag_id, dag in sorted(ALL_DAGS.items())
        for task in dag.tasks
        if select is None or select(dag, task)
    ]


# -- what a task or DAG is, read from the objects Airflow built ----------------------------------


def use_case_of(dag: Any) -> str:
    """The use case a DAG belongs to: the tag its id starts with (``<use case>_<kind>``)."""
    owners = [tag for tag in dag.tags if tag != TAG and dag.dag_id.startswith(f"{tag}_")]
    assert len(owners) == 1, f"{dag.dag_id}: tags {sorted(dag.tags)} name no use case the id starts with"
    return owners[0]


def is_mapped(task: Any) -> bool:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    return isinstance(task, MappedOperator)


def publishes(task: Any) -> bool:
    return bool(task.outlets)


def waits(task: Any) -> bool:
    """A sensor, or an operator told to wait for something to finish (another DAG's run)."""
    from airflow.sdk import BaseSensorOperator

    return isinstance(task, BaseSensorOperator) or bool(getattr(task, "wait_for_completion", False))


def asks_a_person(task: Any) -> bool:
    from airflow.providers.standard.operators.hitl import HITLOperator

    return isinstance(task, HITLOperator)


def triggers_a_dag(task: Any) -> bool:
    return getattr(task, "trigger_dag_id", None) is not None


def needs_a_person_to_start(dag: Any) -> bool:
    """A DAG whose params cannot be satisfied by their defaults: someone fills the form and watches."""
    from airflow.sdk.exceptions import ParamValidationError

    try:
        dag.params.validate()
    except ParamValidationError:
        return True
    return False


def runs_on_a_clock(dag: Any) -> bool:
    """Scheduled by time (a cron or preset timetable, alone or OR-ed with assets), nobody watching."""
    from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule, AssetTriggeredTimetable

    timetable = dag.timetable
    if isinstance(timetable, AssetOrTimeSchedule):
        return True
    return bool(timetable.can_be_scheduled) and not isinstance(timetable, AssetTriggeredTimetable)


def scheduled_on(dag: Any) -> list[str]:
    """The URIs of the assets a DAG's schedule waits for."""
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    def walk(condition: Any) -> Iterator[str]:
        if hasattr(condition, "uri"):
            yield condition.uri
        for inner in getattr(condition, "objects", ()):
            yield from walk(inner)

    timetable = dag.timetable
    return list(walk(timetable.asset_condition)) if isinstance(timetable, AssetTriggeredTimetable) else []


def is_root_of_clock_dag(dag: Any, task: Any) -> bool:
    return runs_on_a_clock(dag) and not task.upstream_task_ids


# -- the bags --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bag", [pytest.param(bag, id=name) for name, bag in BAGS.items()])
def test_no_import_errors(bag: Any) -> None:
    assert bag.import_errors == {}, "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())


def test_every_use_case_gets_every_pipeline() -> None:
    expected = {f"{uc}_{kind}" for uc in ("churn", "delivery_time") for kind in KINDS}
    assert expected <= set(SHIPPED.dag_ids)


def test_the_variant_turns_on_the_optional_branches() -> None:
    """Otherwise the sensor and label-feed rules below would have nothing to check."""
    assert f"{VARIANT}_labels" in VARIANT_BAG.dag_ids
    assert any(waits(t) for t in VARIANT_BAG.dags[f"{VARIANT}_data"].tasks)
    assert any(asks_a_person(t) for dag in ALL_DAGS.values() for t in dag.tasks)
    assert any(is_mapped(t) for dag in ALL_DAGS.values() for t in dag.tasks)


# -- every DAG -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dag", dag_cases())
def test_dag_is_tagged_and_documented(dag: Any) -> None:
    assert TAG in dag.tags, f"{dag.dag_id}: every DAG carries the {TAG!r} tag"
    use_case_of(dag)
    assert "config-error" not in dag.tags, dag.doc_md
    doc = dag.doc_md or ""
    # doc_md says what it does and what to do when it fails (docs/STYLE habit 8).
    assert len(doc) > 100, f"{dag.dag_id}: doc_md says what the DAG does, what triggers it, what it writes"
    assert "fail" in doc.lower(), f"{dag.dag_id}: doc_md says what to do when it fails"
    assert dag.description, dag.dag_id


@pytest.mark.parametrize("dag", dag_cases())
def test_dag_has_an_owner_and_a_run_limit(dag: Any) -> None:
    assert dag.owner and dag.owner != "airflow", dag.dag_id
    assert dag.max_active_runs <= 4, f"{dag.dag_id}: max_active_runs={dag.max_active_runs}"


@pytest.mark.parametrize("dag", dag_cases())
def test_params_are_typed_and_described(dag: Any) -> None:
    assert "request_id" in dag.params, (
        f"{dag.dag_id}: every run can carry the id of the request that started it"
    )
    for name in dag.params:
        param = dag.params.get_param(name)
        typed = param.schema.keys() & {"type", "enum", "const"}
        assert typed, f"{dag.dag_id}: param {name!r} has no JSON Schema type or enum"
        assert param.description, f"{dag.dag_id}: param {name!r} says nothing in the trigger form"


@pytest.mark.parametrize("dag", dag_cases())
def test_assets_a_dag_waits_for_are_published(dag: Any) -> None:
    missing = sorted(set(scheduled_on(dag)) - PUBLISHED)
    assert not missing, f"{dag.dag_id} is scheduled on assets no task publishes: {missing}"


def test_run_time_choices_are_typed_params() -> None:
    from mlops.core.config import PROMOTION_MODES, get_use_case

    def configured_or_stricter(offered: list[str], configured: str) -> bool:
        return all(PROMOTION_MODES.index(m) >= PROMOTION_MODES.index(configured) for m in offered)  # type: ignore[arg-type]

    training = SHIPPED.dags["churn_training"]
    mode = training.params.get_param("promotion_mode")
    promotion = get_use_case("churn", ROOT / "config").promotion
    assert mode.value == promotion.mode and configured_or_stricter(mode.schema["enum"], promotion.mode)
    assert mode.schema["enum"] == promotion.allowed_modes()  # the form offers nothing looser
    assert training.params.get_param("interval").schema["format"] == "date"
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        training.params.get_param("promotion_mode").resolve("yolo")


# -- every task ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dag", "task"), task_cases())
def test_task_has_an_owner_and_a_failure_alert(dag: Any, task: Any) -> None:
    assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id}"
    assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id} has no failure alert"


@pytest.mark.parametrize(("dag", "task"), task_cases(lambda dag, task: task.retries > 0))
def test_a_retried_task_backs_off(dag: Any, task: Any) -> None:
    assert task.retry_exponential_backoff, f"{dag.dag_id}.{task.task_id} must back off"
    assert task.max_retry_delay, f"{dag.dag_id}.{task.task_id}: back-off without a ceiling"


@pytest.mark.parametrize(("dag", "task"), task_cases(lambda dag, task: is_mapped(task)))
def test_a_mapped_task_retries(dag: Any, task: Any) -> None:
    """One element (a partition, a candidate) failing on a passing error must not fail the whole map."""
    assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} must retry I/O"


@pytest.mark.parametrize(
    ("dag", "task"), task_cases(lambda dag, task: publishes(task) and not needs_a_person_to_start(dag))
)
def test_a_task_publishing_an_asset_unattended_retries(dag: Any, task: Any) -> None:
    assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} writes what other DAGs read: it must retry I/O"


@pytest.mark.parametrize(("dag", "task"), task_cases(is_root_of_clock_dag))
def test_the_first_task_of_a_scheduled_dag_retries(dag: Any, task: Any) -> None:
    """It reads what arrives from outside (a delivery, the feature store) on a schedule nobody watches."""
    assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} must retry I/O"


@pytest.mark.parametrize(("dag", "task"), task_cases(lambda dag, task: publishes(task)))
def test_a_task_publishes_only_its_own_use_cases_assets(dag: Any, task: Any) -> None:
    use_case = use_case_of(dag)
    for outlet in task.outlets:
        uri = getattr(outlet, "uri", "")
        assert uri.startswith("mlops://"), (
            f"{dag.dag_id}.{task.task_id}: outlet {outlet!r} is not a platform asset"
        )
        assert uri.rsplit("/", 1)[-1] == use_case, f"{dag.dag_id}.{task.task_id} publishes {uri}"


@pytest.mark.parametrize(("dag", "task"), task_cases(lambda dag, task: waits(task)))
def test_a_waiting_task_frees_its_worker_and_gives_up(dag: Any, task: Any) -> None:
    where = f"{dag.dag_id}.{task.task_id}"
    assert getattr(task, "mode", None) == "reschedule" or getattr(task, "deferrable", False), (
        f"{where} holds a worker slot while it waits: use mode='reschedule' or deferrable=True"
    )
    timeout = getattr(task, "timeout", None)
    if timeout is not None:  # a sensor's own deadline (seconds)
        assert timedelta(seconds=float(timeout)) <= LONGEST_WAIT, f"{where} waits {timeout}s"
        assert float(getattr(task, "poke_interval", 0)) >= 30, f"{where} polls more often than every 30 s"


@pytest.mark.parametrize(("dag", "task"), task_cases(lambda dag, task: asks_a_person(task)))
def test_an_approval_fails_closed(dag: Any, task: Any) -> None:
    from mlops.model.promotion import APPROVE

    where = f"{dag.dag_id}.{task.task_id}"
    assert task.retries == 0, f"{where}: a retry would ask again and lose the answer given"
    assert task.response_timeout, f"{where} could wait for ever"
    assert task.defaults and APPROVE not in task.defaults, f"{where}: silence must never approve"
    assert set(task.defaults) <= set(task.options), where
    assert task.upstream_task_ids, f"{where}: the request follows the gate whose evidence it shows"


@pytest.mark.parametrize(("dag", "task"), task_cases(lambda dag, task: triggers_a_dag(task)))
def test_a_triggered_dag_exists_and_belongs_to_the_same_use_case(dag: Any, task: Any) -> None:
    target = task.trigger_dag_id
    assert target in ALL_DAGS, f"{dag.dag_id}.{task.task_id} triggers {target!r}, which no DAG file builds"
    assert target != dag.dag_id
    assert use_case_of(ALL_DAGS[target]) == use_case_of(dag)


# -- parsing ---------------------------------------------------------------------------------------


def test_parsing_imports_no_heavy_library() -> None:
    code = (
        "import sys, json, runpy, glob\n"
        f"sys.path.insert(0, {str(ROOT / 'plugins')!r})\n"
        f"for f in sorted(glob.glob({str(DAGS)!r} + '/*.py')): runpy.run_path(f)\n"
        "import mlops_plugin\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_broken_config_breaks_only_its_own_dags(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    churn = config / "use_cases" / "churn.yaml"
    churn.write_text(churn.read_text().replace("holdout: 0.2", "holdout: 0.9"))
    bag = _with_config(config)
    assert bag.import_errors == {}
    assert "config-error" not in bag.dags["delivery_time_training"].tags
    broken = bag.dags["churn_training"]
    assert "config-error" in broken.tags
    assert "churn.yaml: split.holdout" in broken.doc_md


def test_the_rules_catch_what_they_forbid() -> None:
    """A DAG breaking each rule is selected by its properties and refused by the checks above."""
    import datetime as dt

    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.providers.standard.sensors.python import PythonSensor
    from airflow.sdk import DAG, Asset, task

    from mlops.model.promotion import APPROVE, REJECT

    with DAG(
        "churn_careless", schedule="@daily", start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tags=["churn"]
    ) as dag:

        @task(retries=0, outlets=[Asset(name="other", uri="mlops://predictions/delivery_time")])
        def each(x: int) -> int:
            return x

        mapped = each.expand(x=[1, 2])
        waiter = PythonSensor(
            task_id="wait", python_callable=lambda: True, mode="poke", timeout=7 * 24 * 3600
        )
        ask = HITLOperator(task_id="ask", subject="Promote?", options=[APPROVE, REJECT], defaults=[APPROVE])
        waiter >> mapped

    each_task = dag.get_task("each")
    assert is_mapped(each_task) and publishes(each_task) and waits(waiter) and asks_a_person(ask)
    assert is_root_of_clock_dag(dag, ask) and runs_on_a_clock(dag) and not needs_a_person_to_start(dag)
    refused = [
        (test_dag_is_tagged_and_documented, (dag,)),
        (test_a_mapped_task_retries, (dag, each_task)),
        (test_a_task_publishing_an_asset_unattended_retries, (dag, each_task)),
        (test_a_task_publishes_only_its_own_use_cases_assets, (dag, each_task)),
        (test_a_waiting_task_frees_its_worker_and_gives_up, (dag, waiter)),
        (test_an_approval_fails_closed, (dag, ask)),
    ]
    for check, args in refused:
        with pytest.raises(AssertionError):
            check(*args)


@pytest.mark.parametrize("dag", dag_cases())
def test_a_dag_that_triggers_training_passes_no_promotion_mode(dag: Any) -> None:
    """A triggered retrain inherits its use case's mode: no DAG can loosen it for another."""
    triggers = [t for t in dag.tasks if getattr(t, "trigger_dag_id", None)]
    for task in triggers:
        conf = getattr(task, "conf", None) or {}
        assert "promotion_mode" not in conf, f"{dag.dag_id}.{task.task_id} sets promotion_mode: {conf}"
