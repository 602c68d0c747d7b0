from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops.core.config import ConfigError, load_use_case_file, load_use_cases

ROOT = Path(__file__).resolve().parents[3]


def _churn() -> dict:
    return yaml.safe_load((ROOT / "config/use_cases/churn.yaml").read_text())


def test_shipped_use_cases_load() -> None:
    good, bad = load_use_cases(ROOT / "config")
    assert bad == {}
    assert {"churn", "delivery_time"} <= set(good)
    assert good["churn"].task == "classification"
    assert good["delivery_time"].task == "regression"


def _break(raw: dict, key: str, value: object) -> dict:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


@pytest.mark.parametrize(
    ("key", "value", "expected_key", "expected_problem"),
    [
        pytest.param(
            "model.estimator",
            "xgboost.XGBClassifier",
            "model.estimator",
            "scikit-learn class",
            id="foreign-estimator",
        ),
        pytest.param("schema.entity", "nope", "schema", "entity column 'nope'", id="entity-not-declared"),
        pytest.param("split.holdout", 0.9, "split.holdout", "less than 0.5", id="holdout-too-large"),
        pytest.param("promotion", KeyError, "promotion", "Field required", id="missing-section"),
        pytest.param(
            "features.2.inputs", ["total_charges"], "features[2]", "takes 2 input", id="ratio-arity"
        ),
        pytest.param(
            "features.0.inputs", ["ghost"], "features[0]", "input column 'ghost'", id="unknown-input"
        ),
        pytest.param(
            "source.uri", "{landing}/churn/latest.csv", "source", "{interval}", id="uri-without-interval"
        ),
        pytest.param(
            "schema.columns.plan",
            {"type": "category"},
            "schema.columns.plan",
            "needs 'values'",
            id="category-without-values",
        ),
        pytest.param("typo_key", 1, "typo_key", "Extra inputs", id="unknown-key"),
    ],
)
def test_bad_config_names_file_key_and_problem(
    tmp_path: Path, key: str, value: object, expected_key: str, expected_problem: str
) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(_break(_churn(), key, value)))
    with pytest.raises(ConfigError) as err:
        load_use_case_file(path)
    assert err.value.path == str(path)
    assert err.value.key == expected_key
    assert expected_problem in err.value.problem
    assert str(path) in str(err.value)


def test_yaml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text("name: churn\n  bad: [indent\n")
    with pytest.raises(ConfigError, match=r"churn.yaml: \(yaml\)"):
        load_use_case_file(path)


def test_name_must_match_file(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(_churn()))
    with pytest.raises(ConfigError, match="must match the file name 'other'"):
        load_use_case_file(path)


def test_one_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "use_cases").mkdir()
    (tmp_path / "use_cases/churn.yaml").write_text(yaml.safe_dump(_churn()))
    (tmp_path / "use_cases/broken.yaml").write_text("name: broken\n")
    good, bad = load_use_cases(tmp_path)
    assert list(good) == ["churn"]
    assert list(bad) == ["broken"]
