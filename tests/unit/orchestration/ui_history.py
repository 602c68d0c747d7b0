"""Records as the platform's tasks write them, for the pages' unit tests: small, made in a tmp lake.

Every path comes from ``mlops.core.layout`` and the alert records from ``mlops.core.alerts``, so
the pages read exactly the files the tasks would leave.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mlops.core import layout
from mlops.core.alerts import drift_alert, failure_alert
from mlops.core.lake import Lake

START = dt.date(2026, 1, 1)
HOSTILE = '<script>alert("x")</script>'
HOSTILE_URLS = (
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", " javascript:x"
)  # fmt: skip


@dataclass
class Made:
    days: list[str]
    quarantined: list[str] = field(default_factory=list)
    drift_alert_day: str | None = None


def write_history(
    lake: Lake, use_case: str, days: int, *, hostile: bool = False, quarantine_every: int = 5
) -> Made:
    """``days`` consecutive days of deliveries, checks, scores and drift checks, two promotion
    decisions (the second waiting for approval), a drift alert and a task-failure alert.

    ``hostile``: record fields that a careless page would turn into markup or script."""
    text = HOSTILE if hostile else "ok"
    made = Made([])
    for i in range(days):
        day = (START + dt.timedelta(days=i)).isoformat()
        made.days.append(day)
        passed = i % quarantine_every != 2
        if not passed:
            made.quarantined.append(day)
        lake.write_json(layout.raw_manifest(use_case, day), {
            "use_case": use_case, "interval": day, "sha256": "0" * 64, "bytes": 10, "format": "csv",
            "source": "landing", "received_at": f"{day}T01:00:00+00:00",
            "uri": lake.uri(layout.raw_dir(use_case, day)),
        })  # fmt: skip
        hostile_url = HOSTILE_URLS[i % len(HOSTILE_URLS)]
        docs = hostile_url if hostile else lake.uri(layout.validation_docs(use_case, day))
        lake.write_json(layout.validation_summary(use_case, day), {
            "passed": passed, "rows": 100 + i, "expectations_evaluated": 5,
            "reason": None if passed else text,
            "errors": [], "warnings": [], "use_case": use_case, "interval": day, "sha256": "0" * 64,
            "data_docs_uri": docs,
        })  # fmt: skip
        lake.write_json(layout.predictions_manifest(use_case, day), {
            "use_case": use_case, "interval": day, "uri": lake.uri(layout.predictions_file(use_case, day)),
            "rows": 100 + i, "seconds": 0.5, "rows_per_second": 200.0, "model_name": "m",
            "model_version": "1",
            "model_run_id": "r", "output_column": "score", "worker": text,
            "prediction_stats": {"count": 100, "bins": [0.0, 0.5, 1.0], "counts": [60, 40]},
        })  # fmt: skip
        report = hostile_url if hostile else lake.uri(layout.drift_report(use_case, day))
        feature = text if hostile else "tenure"
        lake.write_json(layout.drift_summary(use_case, day), {
            "use_case": use_case, "day": day, "model_version": "1", "drift_share": (i % 10) / 10,
            "dataset_drift": i % 10 >= 5, "drifted": i % 10 >= 5, "reasons": [text] if i % 10 >= 5 else [],
            "report_uri": report, "features": {feature: {"score": 0.1 * (i % 4), "drifted": False}},
            "performance": {"metric": "roc_auc", "current": 0.8, "holdout": 0.82, "drop": 0.02},
            "performance_by_day": [{"day": day, "value": 0.79}],
        })  # fmt: skip
    _promotions(lake, use_case, text, hostile)
    _alerts(lake, use_case, made, text, hostile)
    return made


def promotion(use_case: str, version: str, outcome: str, decided_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "use_case": use_case, "decided_at": decided_at, "version": version, "champion_before": None,
        "outcome": outcome, "promoted": outcome == "promoted", "reason": "first model",
        "airflow_dag_id": f"{use_case}_training",
        "airflow_run_id": f"manual__{version}", "metric": "roc_auc", "challenger_metrics": {"roc_auc": 0.8},
    } | extra  # fmt: skip


def _promotions(lake: Lake, use_case: str, text: str, hostile: bool) -> None:
    url = "javascript:alert(1)" if hostile else "http://mlflow.example/#/runs/1"
    first = promotion(use_case, "1", "promoted", "2026-01-02T00:00:00+00:00", mlflow_run_url=url, reason=text,
                      lineage={"data_window": ["2026-01-01", "2026-01-02"], "training_set_uri": url,
                               "training_set_hash": "abcdef0123456789", "git_commit": text})  # fmt: skip
    second = promotion(use_case, "2", "awaiting_approval", "2026-01-03T00:00:00+00:00", champion_before="1",
                       reason=text, reviewed_by=text, mlflow_run_url=url,
                       comparison={"challenger": 0.85, "champion": 0.8, "improvement": 0.05,
                                   "ci_low": 0.01})  # fmt: skip
    for record in (first, second):
        lake.write_json(layout.promotion_record(use_case, record["decided_at"], record["version"]), record)


def _alerts(lake: Lake, use_case: str, made: Made, text: str, hostile: bool) -> None:
    if len(made.days) > 6:
        day = made.days[6]
        made.drift_alert_day = day
        alert = drift_alert(
            use_case=use_case, day=day, model_version="1", drift_share=0.6, dataset_drift=True,
            top_features=[("tenure", 0.4)], reasons=[text],
            report_uri=lake.uri(layout.drift_report(use_case, day)),
        )  # fmt: skip
        alert["text"] = text if hostile else alert["text"]
        queued = alert | {"queued_at": f"{day}T03:00:00+00:00"}
        lake.write_json(layout.alert_record(use_case, "outbox", alert["id"]), queued)
    dag_id = f"{use_case}_training"
    failed = failure_alert(dag_id=dag_id, run_id="r1", task_id="train_model", error=text, log_url=None)
    delivered_to = text if hostile else "slack (webhook)"
    sent = failed | {"queued_at": "2026-01-02T05:00:00+00:00", "delivered_to": delivered_to}
    lake.write_json(layout.alert_record(layout.failure_scope(dag_id), "sent", failed["id"]), sent)
