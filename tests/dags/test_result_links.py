"""Each task button of the plugin opens a field that its task really returns.

The buttons (plugins/mlops_plugin.py) read ``RESULT_LINKS``; the tasks declare the typed result
they return. A renamed field, a task returning another type, or a button without a producer
fails here instead of silently hiding a button in the UI.
"""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

import pytest

from mlops.core.results import RESULT_LINKS, ResultLink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def _return_type(task) -> object:
    callable_ = getattr(task, "python_callable", None)
    assert callable_ is not None, f"{task.dag_id}.{task.task_id} is not a @task function"
    return typing.get_type_hints(callable_).get("return")


@pytest.mark.parametrize("link", RESULT_LINKS, ids=lambda link: link.name)
def test_link_field_is_declared_by_each_producer(link: ResultLink) -> None:
    for task_id, result_type in link.producers.items():
        fields = typing.get_type_hints(result_type)
        assert link.key in fields, f"{result_type.__name__} (returned by {task_id}) has no field {link.key!r}"


@pytest.mark.parametrize("link", RESULT_LINKS, ids=lambda link: link.name)
def test_producing_tasks_return_the_declared_type(dagbag, link: ResultLink) -> None:
    seen = set()
    for dag in dagbag.dags.values():
        if "config-error" in (dag.tags or ()):
            continue
        for task in dag.tasks:
            if task.task_id in link.producers:
                assert _return_type(task) is link.producers[task.task_id], f"{dag.dag_id}.{task.task_id}"
                seen.add(task.task_id)
    assert seen == set(link.producers), f"no task produces {sorted(set(link.producers) - seen)}"


def test_plugin_buttons_are_exactly_the_result_links() -> None:
    spec = importlib.util.spec_from_file_location(
        "mlops_plugin_under_test", ROOT / "plugins" / "mlops_plugin.py"
    )
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    buttons = {link.name: link.key for link in plugin.MLOpsPlugin.global_operator_extra_links}
    assert buttons == {link.name: link.key for link in RESULT_LINKS}
