"""A short history of the platform, made by its own task functions in this process.

``build_history`` lands simulated batches and runs archive → validate → materialize for each
day (one day broken, so it is quarantined), trains and promotes a first model, then scores and
checks drift on the days after it (drift from ``drift_from`` on). Everything lands in the
lake and MLflow store of the current ``MLOPS_HOME``, exactly as the DAGs would write it, so the
platform's pages and a running service read real records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from tests.e2e.helpers import land


@dataclass
class History:
    days: list[dt.date]
    quarantined: list[dt.date]
    trained_on: dt.date
    scored: list[dt.date]
    checked: list[dt.date]
    champion: str
    drift_results: dict[str, dict] = field(default_factory=dict)


def build_history(
    start: dt.date,
    *,
    days: int = 12,
    train_after: int = 6,
    bad_day: int = 2,
    drift_from: int = 9,
    rows: int = 500,
    first_model: dict | None = None,
) -> History:
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake
    from mlops.core.settings import load_settings
    from mlops.data.feature_store import get_feature_store
    from mlops.data.tasks import BatchRejected, extract_and_archive, materialize_features, validate_batch
    from mlops.dev.simulator import DEFAULT_DRIFT, Drift
    from mlops.model.gate import evaluate_and_promote
    from mlops.model.registration import train_and_register
    from mlops.model.scoring import score_partition
    from mlops.model.training_set import prepare_training_set
    from mlops.monitoring.drift import check_drift_and_alert

    uc, lake, settings, store = get_use_case("churn"), get_lake(), load_settings(), get_feature_store()
    all_days = [start + dt.timedelta(days=i) for i in range(days)]
    drift = Drift(start=all_days[drift_from], **DEFAULT_DRIFT["churn"])
    quarantined = []
    for i, day in enumerate(all_days):
        land("churn", day, rows=rows, drift=drift, bad="out_of_range" if i == bad_day else None)
        extract_and_archive(uc, day, lake, settings.landing_uri)
        try:
            validate_batch(uc, day, lake, settings.config_dir)
        except BatchRejected:
            quarantined.append(day)
            continue
        materialize_features(uc, day, lake, store)
    trained_on = all_days[train_after - 1]
    run = f"manual__history-{trained_on}"
    manifest = prepare_training_set(uc, trained_on, lake, store, run)
    trained = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters=first_model or {},
        dag_id="churn_training",
        airflow_run_id=run,
        reason="history",
    )
    # The first model was promoted before the team switched on approval (a use case configured with
    # approval can only be made stricter by a run, so the history uses the config as it was then).
    as_then = uc.model_copy(update={"promotion": uc.promotion.model_copy(update={"mode": "auto"})})
    decision = evaluate_and_promote(
        as_then, trained, manifest, lake, mode=None, dag_id="churn_training", airflow_run_id=run
    )
    assert decision["promoted"], decision["reason"]
    scored, checked, results = [], [], {}
    for day in all_days[train_after:]:
        if day in quarantined:
            continue
        score_partition(uc, day, lake, store)
        scored.append(day)
        results[day.isoformat()] = dict(
            check_drift_and_alert(uc, day, lake, store, airflow_run_id=f"scheduled__{day}")
        )
        checked.append(day)
    return History(all_days, quarantined, trained_on, scored, checked, trained["version"], results)
