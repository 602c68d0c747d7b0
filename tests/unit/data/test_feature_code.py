"""The team's own feature code: checked at config load without importing, used by training and scoring,
versioned by its file's hash (a change rebuilds the features and makes a new training set)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import yaml

from mlops.core.config import ConfigError, get_use_case, load_use_case_file
from mlops.core.feature_repo import check_function
from mlops.core.lake import get_lake
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch
from tests.e2e.helpers import land
from tests.support.service import ROOT, config_with

CODE = """
from mlops.core.feature_repo import feature


@feature
def charges_per_contact(batch):
    import pandas as pd

    return pd.to_numeric(batch["monthly_charges"]) / (pd.to_numeric(batch["support_contacts_30d"]) + {plus})


@feature
def tenure_band(batch):
    return (batch["tenure_months"] >= 12).map({{True: "long", False: "short"}})


def not_marked(batch):
    return batch["tenure_months"]


@feature
def two_args(batch, other):
    return batch["tenure_months"]
"""
CODE_FEATURES = [
    {
        "name": "charges_per_contact",
        "transform": "code",
        "function": "team.charges_per_contact",
        "inputs": ["monthly_charges", "support_contacts_30d"],
    },
    {
        "name": "tenure_band",
        "transform": "code",
        "function": "team.tenure_band",
        "inputs": ["tenure_months"],
        "dtype": "category",
    },
]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "feature_repo"
    folder.mkdir()
    (folder / "team.py").write_text(CODE.format(plus=1))
    monkeypatch.setenv("MLOPS_FEATURE_REPO", str(folder))
    return folder


def _config_with_code(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shipped = yaml.safe_load((ROOT / "config/use_cases/churn.yaml").read_text())
    config = config_with(home, {"churn": {"features": shipped["features"] + CODE_FEATURES}})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
    return config


@pytest.mark.parametrize(
    "ref, message",
    [
        pytest.param("team.not_marked", "not marked with @feature", id="unmarked"),
        pytest.param("team.two_args", "exactly one parameter", id="signature"),
        pytest.param("team.missing", "no top-level function 'missing'", id="no-function"),
        pytest.param("other.fn", "no file", id="no-file"),
        pytest.param("no_dot", "must be '<file>.<function>'", id="bad-reference"),
    ],
)
def test_a_bad_feature_function_is_refused_by_name(repo: Path, ref: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_function(ref, repo)


def test_config_load_checks_the_function_without_importing_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config_with_code(tmp_path / "home", monkeypatch)
    sys.modules.pop("mlops_feature_repo.team", None)
    uc = load_use_case_file(config / "use_cases" / "churn.yaml")
    assert "mlops_feature_repo.team" not in sys.modules  # parsed, not imported
    assert "tenure_band" in uc.categorical_features and "charges_per_contact" in uc.numeric_features
    assert all(f.code_version for f in uc.features if f.transform == "code")

    broken = yaml.safe_load((config / "use_cases" / "churn.yaml").read_text())
    broken["features"][-1]["function"] = "team.not_marked"
    (config / "use_cases" / "churn.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError, match="not marked with @feature"):
        load_use_case_file(config / "use_cases" / "churn.yaml")


@pytest.mark.slow  # the whole loop in process: six days ingested, trained, promoted, scored, rebuilt
def test_code_features_are_built_versioned_and_rebuilt_when_the_code_changes(
    fresh_home: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config_with_code(fresh_home, monkeypatch)
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    store = ParquetFeatureStore(lake)
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(6)]
    for d in days:
        land("churn", d, rows=300)
        extract_and_archive(uc, d, lake, settings.landing_uri)
        validate_batch(uc, d, lake, settings.config_dir)
        first = materialize_features(uc, d, lake, store)
    day = days[-1]
    assert first["feature_version"] == uc.feature_version
    features = store.read_features("churn", day, day)
    import pandas as pd

    from mlops.data.parsing import read_batch

    raw = read_batch(lake.read_bytes(lake.children(f"raw/churn/{day}", ".csv")[0]), uc, "csv")
    expected = pd.to_numeric(raw["monthly_charges"]) / (pd.to_numeric(raw["support_contacts_30d"]) + 1)
    assert features["charges_per_contact"].to_numpy() == pytest.approx(expected.to_numpy())
    assert set(features["tenure_band"]) <= {"long", "short"}
    from mlops.model.gate import evaluate_and_promote
    from mlops.model.registration import train_and_register
    from mlops.model.training_set import prepare_training_set

    manifest = prepare_training_set(uc, day, lake, store, "manual__code-v1")
    assert manifest["lineage"]["feature_version"] == uc.feature_version
    trained = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id="manual__code-v1",
        reason="t",
    )
    assert evaluate_and_promote(
        uc, trained, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__code-v1"
    )["promoted"]

    # The code changes: a new feature version, and the stale partition is rebuilt from the raw archive.
    (repo / "team.py").write_text(CODE.format(plus=2))
    changed = get_use_case("churn")
    assert changed.feature_version != uc.feature_version
    from mlops.data.tasks import refresh_stale_features

    assert refresh_stale_features(changed, [day], lake, store) == [day]
    assert (
        store.partitions("churn")[days[0]]["feature_version"] == uc.feature_version
    )  # only what is read is rebuilt
    rebuilt = store.partitions("churn")[day]
    assert (
        rebuilt["feature_version"] == changed.feature_version
        and rebuilt["content_hash"] != first["content_hash"]
    )
    assert refresh_stale_features(changed, [day], lake, store) == []  # current now: nothing to do
    # The champion learned the old features: scoring refuses rather than feed it the new ones.
    from mlops.model.registry import FeatureVersionMismatch
    from mlops.model.scoring import score_partition

    with pytest.raises(FeatureVersionMismatch, match="retrain"):
        score_partition(changed, day, lake, store)
    # A new training set: same day, same raw data, other features.
    again = prepare_training_set(changed, day, lake, store, "manual__code-v2")
    assert again["training_set_hash"] != manifest["training_set_hash"]
    assert {p["feature_version"] for p in store.partitions("churn").values()} == {changed.feature_version}
