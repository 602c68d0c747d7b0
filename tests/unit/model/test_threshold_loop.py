"""The decision threshold through the loop: chosen at training, stored on the version, shown by the
gate's record and evidence pack, and applied by batch scoring."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.model import registry, tags
from mlops.model.gate import evaluate_and_promote
from mlops.model.registration import train_and_register
from mlops.model.scoring import score_partition
from mlops.model.threshold import PREDICTED_LABEL
from mlops.model.training_set import prepare_training_set
from tests.e2e.helpers import ingest_days
from tests.support.service import config_with

DAYS = [dt.date(2026, 2, 1) + dt.timedelta(days=i) for i in range(5)]
MIN_RECALL = 0.7


@pytest.mark.slow  # five days ingested, one model trained, gated and used for scoring, in process
def test_the_chosen_threshold_is_stored_shown_and_used_for_labels(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    overrides = {
        "model.search": None,
        "model.threshold": {"objective": "precision_at_recall", "min_recall": MIN_RECALL},
    }
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config_with(fresh_home, {"churn": overrides})))
    uc, lake = get_use_case("churn"), get_lake()
    store = ParquetFeatureStore(lake)
    ingest_days("churn", DAYS, store, rows=300)
    manifest = prepare_training_set(uc, DAYS[-1], lake, store, "manual__threshold")
    trained = train_and_register(
        uc, manifest, lake, hyperparameters={}, dag_id="churn_training",
        airflow_run_id="manual__threshold", reason="t",
    )  # fmt: skip

    # Training: chosen on validation for the declared objective, on the run and the version.
    client = registry.configure_mlflow()
    version = client.get_model_version(uc.registered_model_name, trained["version"])
    threshold = float(version.tags[tags.DECISION_THRESHOLD])
    assert version.tags[tags.THRESHOLD_OBJECTIVE] == "precision_at_recall"
    run = client.get_run(trained["run_id"])
    assert float(run.data.params[tags.DECISION_THRESHOLD]) == threshold
    assert run.data.tags[tags.DECISION_THRESHOLD] == version.tags[tags.DECISION_THRESHOLD]
    assert trained["metrics"]["validation_recall"] >= MIN_RECALL  # label metrics at that threshold

    # The gate: its record and evidence pack show the threshold and what it gives on the holdout.
    record = evaluate_and_promote(
        uc, trained, manifest, lake, mode="auto", dag_id="churn_training", airflow_run_id="manual__threshold"
    )
    shown = record["decision_threshold"]
    assert shown is not None
    assert (shown["value"], shown["objective"]) == (threshold, "precision_at_recall")
    assert shown["recall"] == pytest.approx(trained["metrics"]["holdout_recall"])
    assert shown["precision"] == pytest.approx(record["challenger_metrics"]["precision"])
    pack = json.loads(
        lake.read_bytes(layout.evidence_record("churn", record["decided_at"], trained["version"]))
    )
    assert pack["decision_threshold"] == shown
    page = lake.read_bytes(layout.evidence_page("churn", record["decided_at"], trained["version"])).decode()
    assert f'<td id="threshold-value">{threshold:.4f}</td>' in page
    if not record["promoted"]:  # the gate's verdict on so little data is not what this test is about
        client.set_registered_model_alias(uc.registered_model_name, registry.CHAMPION, trained["version"])

    def scored() -> tuple[pd.DataFrame, float]:
        manifest = score_partition(uc, DAYS[-1], lake, store)
        with lake.open_read(layout.predictions_file("churn", DAYS[-1])) as fh:
            return pd.read_parquet(fh), manifest["decision_threshold"]

    # Scoring: the score stays the probability, the label is decided at the version's threshold ...
    frame, used = scored()
    assert used == threshold
    assert frame["score"].between(0, 1).all()
    assert (frame[PREDICTED_LABEL] == (frame["score"] >= threshold).astype("int8")).all()
    assert 0 < frame[PREDICTED_LABEL].sum() < len(frame)
    # ... the one stored with the version: another value there gives other labels for the same scores.
    median = float(frame["score"].median())
    client.set_model_version_tag(
        uc.registered_model_name, trained["version"], tags.DECISION_THRESHOLD, repr(median)
    )
    again, used = scored()
    assert used == median
    assert again["score"].tolist() == frame["score"].tolist()
    assert (again[PREDICTED_LABEL] == (again["score"] >= median).astype("int8")).all()
