"""Training, promotion, scoring, drift, Slack alert and guarded retrain, through the real DAGs."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from mlops.core.config import get_use_case
from mlops.core.lake import get_lake
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.tasks import extract_and_archive, materialize_features, validate_batch
from mlops.dev.simulator import DEFAULT_DRIFT, Drift
from mlops.model import registry
from tests.e2e.helpers import land, load_dags, run_dag
from tests.support.fixtures import slack_standin_fixture  # noqa: F401

pytestmark = pytest.mark.slow
START = dt.date(2026, 5, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(16)]
DRIFT = Drift(start=DAYS[12], **DEFAULT_DRIFT["churn"])


def _ingest(day: dt.date, rows: int = 900) -> None:
    """The data half without the DAG (tested elsewhere), to keep this test about models."""
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    land("churn", day, rows=rows, drift=DRIFT)
    extract_and_archive(uc, day, lake, settings.landing_uri)
    validate_batch(uc, day, lake, settings.config_dir)
    materialize_features(uc, day, lake, ParquetFeatureStore(lake))


def _training_runs(dag_id: str) -> list:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id).all()
        return [(r.run_id, r.state, dict(r.conf or {})) for r in runs]


def _hash(rel: str) -> str:
    return hashlib.sha256(get_lake().read_bytes(rel)).hexdigest()


def test_model_lifecycle(
    airflow_db: Path, fresh_home: Path, slack_standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", slack_standin.webhook_url)
    dags = load_dags()
    lake = get_lake()
    uc = get_use_case("churn")
    for day in DAYS[:11]:
        _ingest(day)

    # Before the first model, scoring and drift have nothing to do: skipped with the reason, not
    # failed; nothing is written and no failure alert goes out.
    for dag_id, task_id in (("churn_scoring", "partitions_to_score"), ("churn_drift", "check_drift")):
        run = run_dag(dags[dag_id], DAYS[10])
        assert run.state == "success", dag_id
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states[task_id] == "skipped", states
        assert "failed" not in states.values(), states
    assert lake.list("predictions/churn") == [] and lake.list("reports/churn") == []
    assert lake.list("alerts/_failures") == []
    assert slack_standin.messages == []

    # First training: promoted.
    assert (
        run_dag(dags["churn_training"], DAYS[9], {"interval": DAYS[9].isoformat(), "reason": "first"}).state
        == "success"
    )
    client = registry.configure_mlflow()
    name = uc.registered_model_name
    assert str(registry.alias_version(client, name, "champion").version) == "1"

    # A weaker challenger: registered, judged, not promoted.
    weak = {
        "interval": DAYS[10].isoformat(),
        "hyperparameters": {"max_iter": 3, "learning_rate": 0.01, "max_leaf_nodes": 3},
        "search_budget": 1,
    }
    assert run_dag(dags["churn_training"], DAYS[10], weak).state == "success"
    assert str(registry.alias_version(client, name, "champion").version) == "1"
    assert str(registry.alias_version(client, name, "challenger").version) == "2"
    history = registry.promotion_history(lake, "churn")
    assert [(h["version"], h["outcome"]) for h in history] == [("1", "promoted"), ("2", "rejected")]
    assert "champion" in history[1]["reason"] and history[1]["comparison"]["improvement"] < 0
    v2 = client.get_model_version(name, "2")
    assert v2.tags["promotion_outcome"] == "rejected" and v2.tags["airflow_dag_id"] == "churn_training"
    assert v2.tags["feature_partitions"] and v2.tags["git_commit"]
    run1 = client.get_run(client.get_model_version(name, "1").run_id)
    assert {"holdout_roc_auc", "validation_roc_auc"} <= set(run1.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run1.info.run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/precision_recall.png", "plots/confusion_matrix.png"} <= artifacts

    # dry_run decides and records, but changes no alias.
    assert (
        run_dag(
            dags["churn_training"], DAYS[10], {"interval": DAYS[10].isoformat(), "promotion_mode": "dry_run"}
        ).state
        == "success"
    )
    assert str(registry.alias_version(client, name, "champion").version) == "1"
    assert registry.promotion_history(lake, "churn")[-1]["outcome"].startswith("dry_run")

    # Scoring: right model version; the days skipped before the champion existed are caught up.
    assert run_dag(dags["churn_scoring"], DAYS[10]).state == "success"
    rel = f"predictions/churn/{DAYS[10]}/predictions.parquet"
    first = _hash(rel)
    manifest = lake.read_json(f"predictions/churn/{DAYS[10]}/_manifest.json")
    assert manifest["model_version"] == "1" and manifest["rows"] == 900
    assert set(manifest["feature_stats"]) == set(uc.feature_names)
    assert sorted(lake.list("predictions/churn")) == [d.isoformat() for d in DAYS[:11]]
    versions = {lake.read_json(f"predictions/churn/{d}/_manifest.json")["model_version"] for d in DAYS[:11]}
    assert versions == {"1"}
    # The same day again with the same champion and features: nothing rewritten, the run says why.
    again = run_dag(dags["churn_scoring"], DAYS[10])
    assert again.state == "success"
    assert {ti.task_id: ti.state for ti in again.get_task_instances()}["partitions_to_score"] == "skipped"
    assert _hash(rel) == first

    # No drift: no message and no training run.
    before = len(_training_runs("churn_training"))
    assert run_dag(dags["churn_drift"], DAYS[10]).state == "success"
    assert slack_standin.messages == []
    assert len(_training_runs("churn_training")) == before
    assert lake.exists(f"reports/churn/{DAYS[10]}/drift_report.html")

    # Drift: exactly one Slack message with the right fields and one training run with the reason.
    for day in DAYS[11:15]:
        _ingest(day)
    assert (
        run_dag(dags["churn_scoring"], DAYS[13], {"intervals": [d.isoformat() for d in DAYS[11:14]]}).state
        == "success"
    )
    assert run_dag(dags["churn_drift"], DAYS[13]).state == "success"
    assert len(slack_standin.messages) == 1
    message = slack_standin.messages[0]
    body = str(message.blocks)
    assert "churn" in body and "*Model version*\\n1" in body and "log_logins_30d" in body
    assert "drift_report.html" in body and "Drift share" in body
    triggered = [r for r in _training_runs("churn_training") if r[0].startswith("drift__")]
    assert len(triggered) == 1
    assert (
        triggered[0][2]["reason"].startswith("drift: ")
        and triggered[0][2]["interval"] == DAYS[13].isoformat()
    )

    # Drift again the next day, inside the cooldown: no second run, no second message.
    run_dag(dags["churn_scoring"], DAYS[14])
    assert run_dag(dags["churn_drift"], DAYS[14]).state == "success"
    assert len([r for r in _training_runs("churn_training") if r[0].startswith("drift__")]) == 1
    assert len(slack_standin.messages) == 1
    decision = lake.read_json(f"reports/churn/{DAYS[14]}/retrain_decision.json")
    assert decision["trigger"] is False and (
        "cooldown" in decision["guard_reason"] or "queued" in decision["guard_reason"]
    )


def test_slack_down_for_a_run_delivers_on_the_next(
    airflow_db: Path, fresh_home: Path, slack_standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift DAG's send_alerts task keeps what Slack refused and sends it on the next run."""
    from mlops.core.alerts import drift_alert, enqueue

    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", slack_standin.webhook_url)
    dags = load_dags()
    lake = get_lake()
    alert = drift_alert(
        use_case="churn",
        day="2026-05-20",
        model_version="4",
        drift_share=0.6,
        dataset_drift=True,
        top_features=[("monthly_charges", 1.2)],
        reasons=["dataset drift"],
        report_uri="file:///r.html",
    )
    enqueue(lake, "churn", alert)
    dag = dags["churn_drift"]
    assert dag.get_task("send_alerts").trigger_rule == "all_done"  # runs even when the check fails
    others = "^(check_drift|decide_retrain|trigger_retrain)$"
    slack_standin.down()
    run = dag.test(logical_date=None, run_conf={"interval": DAYS[0].isoformat()}, mark_success_pattern=others)
    assert run.state == "success"
    assert lake.list("alerts/churn/outbox") == [f"{alert['id']}.json"]
    assert lake.read_json(f"alerts/churn/outbox/{alert['id']}.json")["attempts"] == 1
    slack_standin.up()
    dag.test(logical_date=None, run_conf={"interval": DAYS[1].isoformat()}, mark_success_pattern=others)
    assert len(slack_standin.messages) == 1
    assert lake.list("alerts/churn/outbox") == []
    assert lake.list("alerts/churn/sent") == [f"{alert['id']}.json"]
