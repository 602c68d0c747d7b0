"""The main job: the whole loop on the embedded default, with a summary at the end.

Simulates several weeks of upstream data for the churn use case (one bad batch, drift in the
last week), then runs the real DAGs in-process with ``dag.test()`` against the embedded
Airflow metadata DB: data -> training -> promotion -> scoring -> a worse challenger -> drift ->
alert -> guarded retrain -> the same promotion gate. Everything lands in ``var/`` and is visible
in the Airflow and MLflow UIs afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from mlops.core import layout

if TYPE_CHECKING:
    from mlops.core.results import PromotionRecord

START = dt.date(2026, 1, 1)
BAD_DAY_INDEX = 8  # day 9 of the simulation
BAD_KIND = "unknown_category"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _quiet_logs() -> None:
    for name in ("airflow", "great_expectations", "mlflow", "alembic", "evidently", "py.warnings", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("mlops").setLevel(logging.WARNING)


def run_demo(days: int = 28, rows: int = 3000, use_case_name: str = "churn", fresh: bool = True) -> int:
    from mlops.dev.embedded import apply_embedded_defaults

    airflow_env = apply_embedded_defaults()
    from mlops.core.settings import load_settings

    settings = load_settings()
    if fresh:
        for sub in ("lake", "landing", "mlflow", "airflow"):
            shutil.rmtree(settings.home / sub, ignore_errors=True)
    os.makedirs(airflow_env["AIRFLOW_HOME"], exist_ok=True)
    t0 = time.perf_counter()
    _say(f"[setup] Airflow metadata DB (SQLite) at {airflow_env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    _quiet_logs()

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import ObjectStoragePath

    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake
    from mlops.data.ingest import source_uri
    from mlops.dev.simulator import DEFAULT_DRIFT, Drift, make_batch_bytes
    from mlops.model.registry import promotion_history

    use_case = get_use_case(use_case_name)
    lake = get_lake()
    drift_start = START + dt.timedelta(days=days - 7)
    drift = Drift(start=drift_start, **DEFAULT_DRIFT[use_case_name])
    day_list = [START + dt.timedelta(days=i) for i in range(days)]
    bad_day = day_list[BAD_DAY_INDEX]
    _say(f"[simulate] {days} daily batches of {rows} rows for '{use_case_name}' from {START}; bad batch ({BAD_KIND}) on {bad_day}; drift from {drift_start}")
    for i, day in enumerate(day_list):
        data = make_batch_bytes(use_case_name, day, use_case.source.format, rows=rows, drift=drift, bad=BAD_KIND if i == BAD_DAY_INDEX else None)
        path = ObjectStoragePath(source_uri(use_case, day, settings.landing_uri))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    bag = DagBag(airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dags = {kind: bag.dags[use_case.dag_id(kind)] for kind in ("data", "training", "scoring", "drift")}

    def run(kind: str, day: dt.date | None = None, conf: dict[str, Any] | None = None) -> Any:
        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day else None
        return dags[kind].test(logical_date=logical, run_conf=conf or ({"interval": day.isoformat()} if day else None))

    pre_drift = [d for d in day_list if d < drift_start]
    post_drift = [d for d in day_list if d >= drift_start]
    train_day = pre_drift[len(pre_drift) * 2 // 3 - 1]

    # 1. Data half for the weeks before drift.
    outcomes: dict[str, str] = {}
    for day in pre_drift:
        outcomes[day.isoformat()] = run("data", day).state
    _say(f"[data] {len(pre_drift)} runs: {sum(s == 'success' for s in outcomes.values())} succeeded, {sum(s != 'success' for s in outcomes.values())} failed")

    # 2. First training: promoted if it passes the thresholds.
    run("training", train_day, {"interval": train_day.isoformat(), "reason": "initial model"})
    # 3. Score the days after training with the champion.
    to_score = [d for d in pre_drift if d > train_day]
    run("scoring", to_score[-1], {"intervals": [d.isoformat() for d in to_score]})
    # 4. A challenger with weaker hyperparameters: must not be promoted.
    last_pre = pre_drift[-1]
    run("training", last_pre, {"interval": last_pre.isoformat(), "hyperparameters": {"max_iter": 4, "learning_rate": 0.02, "max_leaf_nodes": 4}, "reason": "experiment: far fewer boosting rounds"})
    # 5. Drift check before drift: expected quiet.
    run("drift", last_pre)

    # 6. The drifted week arrives and is scored.
    for day in post_drift:
        outcomes[day.isoformat()] = run("data", day).state
    run("scoring", post_drift[-1], {"intervals": [d.isoformat() for d in post_drift]})
    # 7. Drift checks: the first one alerts and triggers a retrain; the next day is inside the cooldown.
    check_day = post_drift[min(4, len(post_drift) - 1)]
    run("drift", check_day)
    retrain = _execute_triggered_training(dags["training"], use_case.dag_id("training"))
    next_day = post_drift[min(5, len(post_drift) - 1)]
    run("drift", next_day)

    elapsed = time.perf_counter() - t0
    _summary(settings, lake, use_case, outcomes, promotion_history(lake, use_case.name), bad_day, last_pre, check_day, next_day, retrain, elapsed)
    return 0


def _execute_triggered_training(training_dag: Any, dag_id: str) -> dict[str, Any] | None:
    """Run the training run the drift DAG queued. No scheduler runs in the demo, so the demo
    executes it in-process with the same conf, then removes the queued placeholder."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        queued = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.state == "queued").all()
        confs = [(r.run_id, dict(r.conf or {})) for r in queued]
        for r in queued:
            session.delete(r)
    if not confs:
        return None
    run_id, conf = confs[0]
    dr = training_dag.test(logical_date=None, run_conf=conf)
    return {"queued_run_id": run_id, "conf": conf, "state": dr.state}


def _summary(settings: Any, lake: Any, use_case: Any, outcomes: dict[str, str], history: list[PromotionRecord], bad_day: dt.date, quiet_day: dt.date, check_day: dt.date, next_day: dt.date, retrain: dict[str, Any] | None, elapsed: float) -> None:
    name = use_case.name
    raw_days = lake.list(layout.raw_root(name))
    rows_in = 0
    for day in raw_days:
        rel = layout.validation_summary(name, day)
        if lake.exists(rel):
            rows_in += lake.read_json(rel)["rows"]
    _say("")
    _say("=" * 78)
    _say(f"MLOps demo summary: use case '{name}' ({elapsed:.0f} s)")
    _say("=" * 78)
    passed = sum(1 for s in outcomes.values() if s == "success")
    _say(f"Rows in: {rows_in:,} across {len(raw_days)} archived batches (raw/{name}/<day>/, each with its SHA-256)")
    _say(f"Validation: {passed} batches passed, {len(outcomes) - passed} quarantined")
    for q in lake.list(layout.quarantine_root(name)):
        reason = lake.read_json(layout.quarantine_reason(name, q))
        _say(f"  quarantined {q}: {reason['errors'][0]['text']}")
        _say(f"    -> {reason['quarantine_uri']} (batch, GX result, Data Docs)")
    _say("Promotion history:")
    for h in history:
        metric = h.get("metric") or ""
        value = (h.get("challenger_metrics") or {}).get(metric)
        shown = f"{metric}={value:.4f}" if value is not None else ""
        _say(f"  v{h['version']}: {h['outcome'].upper()} {shown} - {h['reason']}")
    preds = lake.list(layout.predictions_root(name))
    total = sum(lake.read_json(layout.predictions_manifest(name, d))["rows"] for d in preds)
    _say(f"Predictions: {total:,} rows in {len(preds)} partitions under {lake.uri(layout.predictions_root(name))}/")
    for day in (quiet_day, check_day, next_day):
        rel = layout.drift_summary(name, day)
        if lake.exists(rel):
            s = lake.read_json(rel)
            verdict = "DRIFT" if s["drifted"] else "no drift"
            tops = ", ".join(f"{f} ({v:.2f})" for f, v in s["top_features"][:3])
            _say(f"Drift {day}: {verdict}, drift share {s['drift_share']:.0%}{'; top: ' + tops if tops else ''}")
            dec = layout.retrain_decision(name, day)
            if lake.exists(dec):
                d = lake.read_json(dec)
                _say(f"  retrain guard: {'TRIGGER' if d['trigger'] else 'no trigger'} - {d['guard_reason']}")
            _say(f"  report: {s['report_uri']}")
    for rel in lake.children(layout.alert_box(name, "sent"), ".json"):
        rec = lake.read_json(rel)
        _say(f"Alert ({rec['delivered_to']}): {rec['text']}")
    if retrain:
        _say(f"Retrain triggered by drift ran: {retrain['state']} (reason: {retrain['conf'].get('reason', '')[:120]})")
    _say("")
    home = settings.home
    _say("Open what was produced:")
    _say(f"  Airflow UI: make ui-airflow   -> http://localhost:8080/dags/{name}_data (runs, quarantine, task buttons)")
    _say(f"  MLflow UI:  make ui-mlflow    -> http://localhost:5000/#/models/{use_case.registered_model_name}")
    _say(f"  Files:      {home}/lake (raw, quarantine, features, predictions, reports)")
    _say(json.dumps({"history": len(history), "predictions": total}, sort_keys=True))
