"""Entity keys of the declared type, integer or string, through the whole pipeline.

A use case written in YAML only (the churn config with ``customer_id`` declared ``str`` and keys
like ``"000123"`` or ``"C-42"``) goes through extract, validation, features, the point-in-time
training set, training and promotion, scoring and the drift check; the keys come out exactly as
they went in, leading zeros included.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops.core import layout
from mlops.core.config import load_use_case_file
from mlops.core.lake import get_lake
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.features import ENTITY
from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch
from mlops.data.validation import derive_suite
from mlops.dev.simulator import batch_bytes, simulate_batch
from mlops.model import registry
from mlops.model.gate import evaluate_and_promote
from mlops.model.registration import train_and_register
from mlops.model.scoring import score_partition
from mlops.model.training_set import prepare_training_set
from mlops.monitoring.drift import check_drift_and_alert

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 3, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(8)]


def _key(kind: str, value: int) -> object:
    return value if kind == "int" else ("C-" if value % 2 else "0") + f"{value:06d}"


@pytest.fixture
def accounts(
    tmp_path: Path, fresh_home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
):
    """A use case ``accounts`` of the given key type, defined only by its YAML file."""
    kind = request.param
    raw = yaml.safe_load((ROOT / "config" / "use_cases" / "churn.yaml").read_text())
    raw["name"] = "accounts"
    raw["source"]["uri"] = "{landing}/accounts/{interval}.csv"
    raw["schema"]["columns"]["customer_id"] = {"type": kind}
    raw["training"]["window_days"] = 14
    config = tmp_path / "config"
    (config / "use_cases").mkdir(parents=True)
    path = config / "use_cases" / "accounts.yaml"
    path.write_text(yaml.safe_dump(raw))
    use_case = load_use_case_file(path)
    (config / "expectations").mkdir()
    (config / "expectations" / "accounts.json").write_text(json.dumps(derive_suite(use_case)))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
    for day in DAYS:
        frame = simulate_batch("churn", day, 500)
        frame["customer_id"] = [_key(kind, int(v)) for v in frame["customer_id"]]
        target = fresh_home / "landing" / "accounts" / f"{day.isoformat()}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(batch_bytes(frame, "csv"))
    return kind, use_case


@pytest.mark.parametrize("accounts", ["int", "str"], indirect=True)
def test_keys_of_the_declared_type_through_the_pipeline(accounts) -> None:
    kind, uc = accounts
    lake, settings = get_lake(), load_settings()
    store = ParquetFeatureStore(lake)
    for day in DAYS:
        extract_and_archive(uc, day, lake, settings.landing_uri)
        validate_batch(uc, day, lake, settings.config_dir)
        materialize_features(uc, day, lake, store)

    features = store.read_features("accounts", DAYS[0], DAYS[-1])
    keys = list(features[ENTITY])
    assert all(isinstance(k, int) for k in keys) if kind == "int" else all(isinstance(k, str) for k in keys)
    if kind == "str":
        assert any(k.startswith("0") for k in keys) and any(k.startswith("C-") for k in keys)

    train_day = DAYS[5]
    manifest = prepare_training_set(uc, train_day, lake, store, "manual__keys")
    trained = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="accounts_training",
        airflow_run_id="manual__keys",
        reason="test",
    )
    decision = evaluate_and_promote(
        uc, trained, manifest, lake, mode="auto", dag_id="accounts_training", airflow_run_id="manual__keys"
    )
    assert decision["promoted"], decision["reason"]

    for day in DAYS[6:]:
        result = score_partition(uc, day, lake, store)
        assert result["rows"] == 500
        with lake.open_read(layout.predictions_file("accounts", day)) as fh:
            predictions = pd.read_parquet(fh)
        expected = store.read_features("accounts", day, day)[ENTITY]
        assert sorted(predictions[ENTITY]) == sorted(expected)
        assert (predictions[ENTITY].map(type) == (int if kind == "int" else str)).all()

    verdict = check_drift_and_alert(uc, DAYS[-1], lake, store, airflow_run_id="manual__drift")
    assert verdict["model_version"] == trained["version"]
    client = registry.configure_mlflow()
    assert registry.alias_version(client, uc.registered_model_name, registry.CHAMPION).version == int(
        trained["version"]
    )
