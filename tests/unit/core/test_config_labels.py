"""Where labels come from, declared in YAML: in the batch, or on a feed of their own."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.core.config import ConfigError, parse_use_case

ROOT = Path(__file__).resolve().parents[3]
CHURN = yaml.safe_load((ROOT / "config" / "use_cases" / "churn.yaml").read_text())


def label_feed_config() -> dict[str, Any]:
    raw = copy.deepcopy(CHURN)
    raw["schema"].pop("target")
    raw["schema"]["columns"].pop("churned")
    raw["labels"] = {
        "source": {"kind": "files", "format": "csv", "uri": "{landing}/churn_labels/{interval}.csv"},
        "entity": "customer_id",
        "event_time": "event_time",
        "label": "churned",
        "columns": {
            "customer_id": {"type": "int"},
            "event_time": {"type": "datetime"},
            "churned": {"type": "int", "min": 0, "max": 1},
        },
    }
    return raw


def test_a_label_feed_gives_a_second_feed() -> None:
    use_case = parse_use_case(label_feed_config(), "churn.yaml")
    assert [feed.stream for feed in use_case.feeds] == ["churn", "churn.labels"]
    labels = use_case.feed("labels")
    assert (labels.entity, labels.event_time, labels.days_before) == ("customer_id", "event_time", 90)
    assert "churned" not in use_case.feed("batch").columns


def test_labels_in_the_batch_give_one_feed() -> None:
    use_case = parse_use_case(copy.deepcopy(CHURN), "churn.yaml")
    assert [feed.stream for feed in use_case.feeds] == ["churn"]
    with pytest.raises(KeyError, match="no label feed"):
        use_case.feed("labels")


def _both(raw: dict) -> None:
    raw["schema"]["target"] = "tenure_months"


def _neither(raw: dict) -> None:
    raw.pop("labels")


def _key_mismatch(raw: dict) -> None:
    raw["labels"]["columns"]["customer_id"] = {"type": "str"}


def _text_label(raw: dict) -> None:
    raw["labels"]["columns"]["churned"] = {"type": "str"}


def _undeclared(raw: dict) -> None:
    raw["labels"]["label"] = "outcome"


def _same_landing(raw: dict) -> None:
    raw["labels"]["source"]["uri"] = raw["source"]["uri"]


@pytest.mark.parametrize(
    "break_it, key, words",
    [
        pytest.param(_both, "schema.target", "not both", id="target-and-feed"),
        pytest.param(_neither, "schema.target", "not neither", id="no-labels-at-all"),
        pytest.param(_key_mismatch, "labels.entity", "keys must match", id="key-type-mismatch"),
        pytest.param(_text_label, "labels", "must be numeric", id="text-label"),
        pytest.param(_undeclared, "labels", "'outcome' is not declared", id="undeclared-label-column"),
        pytest.param(_same_landing, "labels.source.uri", "apart from the batches", id="same-landing"),
    ],
)
def test_bad_label_declarations_are_named(break_it: Any, key: str, words: str) -> None:
    raw = label_feed_config()
    break_it(raw)
    with pytest.raises(ConfigError) as raised:
        parse_use_case(raw, "churn.yaml")
    assert raised.value.key.startswith(key), raised.value
    assert words in str(raised.value)


@pytest.mark.parametrize(
    "expectations, min_rows",
    [
        pytest.param(None, 0, id="default-an-empty-day-is-valid"),
        pytest.param({"min_rows": 0}, 0, id="zero"),
        pytest.param({"min_rows": 25}, 25, id="a-floor"),
    ],
)
def test_a_label_feed_may_accept_a_day_without_labels(expectations: dict | None, min_rows: int) -> None:
    raw = label_feed_config()
    if expectations is not None:
        raw["labels"]["expectations"] = expectations
    use_case = parse_use_case(raw, "churn.yaml")
    assert use_case.feed("labels").expectations.min_rows == min_rows


def test_label_min_rows_below_zero_and_batch_min_rows_zero_are_refused() -> None:
    raw = label_feed_config()
    raw["labels"]["expectations"] = {"min_rows": -1}
    with pytest.raises(ConfigError) as raised:
        parse_use_case(raw, "churn.yaml")
    assert raised.value.key.startswith("labels.expectations.min_rows"), raised.value
    batch = label_feed_config()
    batch.setdefault("expectations", {})["min_rows"] = 0  # a day of scoring data with no row is not a day
    with pytest.raises(ConfigError) as raised:
        parse_use_case(batch, "churn.yaml")
    assert raised.value.key.startswith("expectations.min_rows"), raised.value
