"""MLflow tag names have one home: searches built from them find the runs set with them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mlops.model import registry, tags

MODEL = Path(__file__).resolve().parents[3] / "include" / "mlops" / "model"


def test_a_search_finds_exactly_the_run_carrying_every_tag(fresh_home: Path) -> None:
    client = registry.configure_mlflow()
    experiment = client.create_experiment("tag-search")
    parent = client.create_run(experiment).info.run_id
    wanted = {tags.PARENT_RUN_ID: parent, tags.CANDIDATE: "c01-Ridge", tags.AIRFLOW_RUN_ID: "manual__1"}
    hit = client.create_run(experiment, tags=wanted).info.run_id
    client.create_run(experiment, tags=wanted | {tags.CANDIDATE: "c02-Ridge"})  # another candidate
    client.create_run(experiment, tags={tags.CANDIDATE: "c01-Ridge"})  # same name, another training run

    found = client.search_runs([experiment], filter_string=tags.search_filter(wanted))
    assert [run.info.run_id for run in found] == [hit]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({tags.AIRFLOW_RUN_ID: "manual__1"}, "tags.airflow_run_id = 'manual__1'", id="plain-key"),
        pytest.param(
            {tags.PARENT_RUN_ID: "abc"}, "tags.`mlflow.parentRunId` = 'abc'", id="dotted-key-is-quoted"
        ),
        pytest.param(
            {tags.AIRFLOW_RUN_ID: "r", tags.TRAINING_SET_HASH: "h"},
            "tags.airflow_run_id = 'r' and tags.training_set_hash = 'h'",
            id="all-of-them",
        ),
    ],
)
def test_search_filter_text(values: dict[str, str], expected: str) -> None:
    assert tags.search_filter(values) == expected


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({tags.AIRFLOW_RUN_ID: "manual__it's"}, id="quote-in-value"),
        pytest.param({}, id="no-tags"),
    ],
)
def test_a_search_that_cannot_be_written_is_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="MLflow"):
        tags.search_filter(values)


def test_promotion_tags_cut_a_long_reason() -> None:
    long = "x" * (tags.MAX_VALUE_LENGTH + 10)
    assert tags.promotion("rejected", long) == {
        tags.PROMOTION_OUTCOME: "rejected",
        tags.PROMOTION_REASON: "x" * tags.MAX_VALUE_LENGTH,
    }


# Calls that set or search tags, and where in each the tag name goes.
_NAME_ARG = {"set_tag": 1, "set_model_version_tag": 2, "set_registered_model_tag": 1, "set_experiment_tag": 1}
_DICT_ARG = {"set_tags": 0, "tag_version": 3}


def spelled_tag_names(source: str) -> list[str]:
    """Tag names written as string literals where a tag is set or searched (line: text)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method = node.func.attr
        args = list(node.args)
        literals: list[ast.expr] = []
        if method in _NAME_ARG and len(args) > _NAME_ARG[method]:
            literals.append(args[_NAME_ARG[method]])
        if (
            method in _DICT_ARG
            and len(args) > _DICT_ARG[method]
            and isinstance(args[_DICT_ARG[method]], ast.Dict)
        ):
            literals += [k for k in args[_DICT_ARG[method]].keys if k is not None]  # type: ignore[union-attr]
        for keyword in node.keywords:
            if keyword.arg == "tags" and isinstance(keyword.value, ast.Dict):
                literals += [k for k in keyword.value.keys if k is not None]
            if keyword.arg == "filter_string" and isinstance(keyword.value, ast.Constant | ast.JoinedStr):
                text = ast.unparse(keyword.value)
                if "tags." in text:
                    found.append(f"line {node.lineno}: {text}")
        found += [f"line {n.lineno}: {n.value!r}" for n in literals if isinstance(n, ast.Constant)]
    return found


@pytest.mark.parametrize(
    "path", sorted(p for p in MODEL.glob("*.py") if p.name != "tags.py"), ids=lambda p: p.name
)
def test_model_modules_name_tags_through_the_tags_module(path: Path) -> None:
    assert spelled_tag_names(path.read_text()) == [], f"{path.name}: use the names in mlops.model.tags"


def test_the_tag_name_check_can_fail() -> None:
    source = (
        "client.set_tag(run, 'worker', w)\n"
        "client.set_model_version_tag(name, v, 'promotion_outcome', o)\n"
        "mlflow.set_tags({'airflow_run_id': r})\n"
        "client.create_run(e, tags={'candidate': c})\n"
        "client.search_runs([e], filter_string=f\"tags.airflow_run_id = '{r}'\")\n"
        "client.set_tag(run, tags.WORKER, w)\n"
    )
    assert [line.split(":")[0] for line in spelled_tag_names(source)] == [
        f"line {i}" for i in (1, 2, 3, 4, 5)
    ]
