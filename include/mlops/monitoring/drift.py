"""Drift monitoring with Evidently 0.7: the report, live performance and the drift alert.

Whether a drifted check retrains is decided in :mod:`mlops.monitoring.retrain`.

Reference: the feature partitions the champion was trained on (its ``feature_partitions`` tag).
Current: the feature rows scored in the last ``drift.window_days`` days, with their scores, and
the online requests the model server answered on those days (their features built from the
logged request rows by the same ``build_features``), each row marked with its ``source``.

Scale: both sides are sampled uniformly without replacement to ``drift.sample_size`` rows with a
fixed seed. With more than 1,000 rows Evidently's default tests are distances (normed
Wasserstein for numbers, Jensen-Shannon for categories) whose value converges to the
population distance as the sample grows and, unlike p-value tests, does not flag tiny shifts
merely because there are millions of rows; so a sample of tens of thousands gives the same
verdict as the full data at a fraction of the time (``bench/drift_sampling.py`` measures both).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any, cast

from mlops.core import layout
from mlops.core.results import DriftCheckResult
from mlops.data.features import ENTITY, EVENT_TIME, LABEL, LABEL_AVAILABLE_AT
from mlops.data.request_log import output_column
from mlops.model import tags

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake
    from mlops.data.feature_store import FeatureStore

log = logging.getLogger(__name__)
PREDICTION = "prediction_value"
SOURCE = "source"  # where a current row comes from: "batch" (a scored partition) or "online"


def sample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A uniform sample without replacement of at most ``size`` rows, reproducible by ``seed``."""
    if len(frame) <= size:
        return frame.reset_index(drop=True)
    return frame.sample(n=size, random_state=seed, replace=False).reset_index(drop=True)


def _drifted(method: str, value: float, threshold: float) -> bool:
    # p-value tests flag drift below the threshold; distances flag it at or above.
    return value < threshold if "p_value" in method.lower() else value >= threshold


def run_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    drift_share: float,
    stattests: dict[str, str] | None = None,
    prediction_column: str | None = None,
) -> tuple[dict[str, Any], Any]:
    """Run Evidently; return (summary, snapshot). Summary: per-column score/method/drifted, share."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = numeric + categorical
    num_all = numeric + ([prediction_column] if prediction_column else [])
    definition = DataDefinition(numerical_columns=num_all, categorical_columns=categorical)
    metrics: list[Any] = [
        DataDriftPreset(columns=columns, drift_share=drift_share, per_column_method=stattests or None)
    ]
    if prediction_column:
        metrics.append(ValueDrift(column=prediction_column))
    snapshot = Report(metrics).run(
        current_data=Dataset.from_pandas(
            current[columns + ([prediction_column] if prediction_column else [])], data_definition=definition
        ),
        reference_data=Dataset.from_pandas(
            reference[columns + ([prediction_column] if prediction_column else [])],
            data_definition=definition,
        ),
    )
    per_column: dict[str, dict[str, Any]] = {}
    share = None
    for metric in snapshot.dict()["metrics"]:
        cfg = metric["config"]
        kind = cfg["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share = float(metric["value"]["share"])
        elif kind == "ValueDrift":
            value = float(metric["value"])
            per_column[cfg["column"]] = {
                "score": value,
                "method": cfg["method"],
                "threshold": cfg["threshold"],
                "drifted": _drifted(cfg["method"], value, cfg["threshold"]),
            }
    features = {k: v for k, v in per_column.items() if k != prediction_column}
    if share is None:
        share = sum(v["drifted"] for v in features.values()) / max(len(features), 1)
    summary = {
        "drift_share": share,
        "dataset_drift": share >= drift_share,
        "features": features,
        "prediction": per_column.get(prediction_column) if prediction_column else None,
    }
    return summary, snapshot


def queue_drift_alert(
    lake: Lake, use_case: UseCase, result: dict[str, Any], now: dt.datetime | None = None
) -> str:
    """Put the drift alert in the outbox, once per champion per cooldown (no alert storms)."""
    from mlops.core.alerts import drift_alert, enqueue, recent_alert

    now = now or dt.datetime.now(dt.UTC)
    earlier = recent_alert(
        lake,
        use_case.name,
        "drift",
        "model_version",
        result["model_version"],
        use_case.drift.cooldown_hours,
        now,
    )
    if earlier is not None:
        log.warning(
            "drift persists on v%s; alert suppressed (already alerted at %s): %s",
            result["model_version"],
            earlier["queued_at"],
            "; ".join(result["reasons"]),
        )
        return f"suppressed: already alerted at {earlier['queued_at']}"
    alert = drift_alert(
        use_case=use_case.name,
        day=result["day"],
        model_version=result["model_version"],
        drift_share=result["drift_share"],
        dataset_drift=result["dataset_drift"],
        top_features=result["top_features"],
        reasons=result["reasons"],
        report_uri=result["report_uri"],
    )
    return "queued" if enqueue(lake, use_case.name, alert) else "already queued"


# ---------------------------------------------------------------------------------------------
# The drift check task


def _reference(
    use_case: UseCase, store: FeatureStore, client: Any
) -> tuple[pd.DataFrame, Any, dict[str, Any]]:
    from mlops.model import registry
    from mlops.model.scoring import NoChampion

    version = registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION)
    if version is None:
        raise NoChampion(
            f"no champion yet: train one from the training DAG ({use_case.dag_id('training')}); "
            f"use case {use_case.name!r} has no model to check, so nothing was compared or written"
        )
    partitions = json.loads((version.tags or {}).get(tags.FEATURE_PARTITIONS, "{}"))
    if not partitions:
        raise LookupError(
            f"champion v{version.version} of {use_case.registered_model_name!r} has no feature_partitions lineage tag"
        )
    days = sorted(dt.date.fromisoformat(d) for d in partitions)
    frame = store.read_features(use_case.name, days[0], days[-1])
    return frame, version, partitions


def current_window(use_case: UseCase, days: list[dt.date], lake: Lake, store: FeatureStore) -> pd.DataFrame:
    """The rows the model saw on ``days``: scored partitions, then online requests, marked by ``source``.

    Both carry entity, event time, the features, the score (or prediction) and the model version;
    only committed days and request-log batches are read.
    """
    import pandas as pd

    from mlops.data.request_log import online_features, read_online_requests
    from mlops.model.scoring import read_predictions

    out_col = output_column(use_case)
    columns = [ENTITY, EVENT_TIME, *use_case.feature_names, out_col, "model_version"]
    frames = []
    preds = read_predictions(lake, use_case.name, days)
    if not preds.empty:
        scored = store.read_features(use_case.name, days[0], days[-1]).merge(
            preds[[ENTITY, EVENT_TIME, out_col, "model_version"]], on=[ENTITY, EVENT_TIME], how="inner"
        )
        frames.append(scored[columns].assign(**{SOURCE: "batch"}))
    requests = read_online_requests(lake, use_case.name, days)
    if not requests.empty:
        frames.append(online_features(requests, use_case)[columns].assign(**{SOURCE: "online"}))
    if not frames:
        return pd.DataFrame(columns=[*columns, SOURCE])
    return pd.concat(frames, ignore_index=True)


def check_drift(
    use_case: UseCase, day: dt.date, lake: Lake, store: FeatureStore, *, airflow_run_id: str
) -> dict[str, Any]:
    """Compare the last window's scored and served features with the champion's training data; write
    the report.

    NoChampion (before anything is read or written) when the use case has no champion yet.
    """
    import pandas as pd

    from mlops.model import registry
    from mlops.model.scoring import read_predictions
    from mlops.model.threshold import threshold_of
    from mlops.model.training import predict_scores

    spec = use_case.drift
    client = registry.configure_mlflow()
    reference_full, version, partitions = _reference(use_case, store, client)
    days = [day - dt.timedelta(days=i) for i in range(spec.window_days)][::-1]
    current_full = current_window(use_case, days, lake, store)
    if current_full.empty:
        raise LookupError(
            f"use case {use_case.name!r}: nothing was scored and no online request was served in {days[0]}..{days[-1]}; "
            "run the scoring DAG first"
        )
    out_col = output_column(use_case)
    current = sample(current_full, spec.sample_size, spec.seed)
    reference = sample(reference_full, spec.sample_size, spec.seed)
    model = registry.load_model(use_case.registered_model_name, version.version)
    reference[PREDICTION] = predict_scores(model, reference[use_case.feature_names], use_case.task)
    current[PREDICTION] = current[out_col].to_numpy()
    summary, snapshot = run_drift_report(
        reference,
        current,
        numeric=use_case.numeric_features,
        categorical=use_case.categorical_features,
        drift_share=spec.drift_share,
        stattests=dict(spec.stattests),
        prediction_column=PREDICTION,
    )

    # Performance where labels have arrived for the scored rows, per day of the events.
    perf_days = [day - dt.timedelta(days=i) for i in range(spec.performance_days)][::-1]
    scored = read_predictions(lake, use_case.name, perf_days)
    labels = store.read_labels(use_case.name, perf_days[0], day)
    as_of = pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))
    metric = use_case.promotion.metric
    overall, by_day = live_performance(
        labels,
        scored,
        as_of=as_of,
        out_col=out_col,
        task=use_case.task,
        metric=metric,
        min_rows=spec.min_labelled_rows,
        threshold=threshold_of(version),  # label metrics as the holdout's: at the champion's threshold
    )
    performance = None
    baseline = client.get_run(version.run_id).data.metrics.get(f"holdout_{metric}")
    if overall is not None and baseline is not None:
        drop = (
            (baseline - overall["current"])
            if use_case.promotion.higher_is_better
            else (overall["current"] - baseline)
        )
        performance = overall | {"holdout": baseline, "drop": drop}

    reasons = []
    if summary["dataset_drift"]:
        reasons.append(
            f"dataset drift: {summary['drift_share']:.0%} of features drifted (threshold {spec.drift_share:.0%})"
        )
    for feat in spec.critical_features:
        if summary["features"].get(feat, {}).get("drifted"):
            reasons.append(
                f"critical feature '{feat}' drifted (score {summary['features'][feat]['score']:.3f})"
            )
    if spec.alert_on_prediction_drift and summary["prediction"] and summary["prediction"]["drifted"]:
        reasons.append(f"prediction drift (score {summary['prediction']['score']:.3f})")
    if (
        performance
        and spec.max_performance_drop is not None
        and performance["drop"] > spec.max_performance_drop
    ):
        reasons.append(
            f"{performance['metric']} fell to {performance['current']:.4f} from {performance['holdout']:.4f} on holdout "
            f"(drop {performance['drop']:.4f} > {spec.max_performance_drop})"
        )
    top = sorted(
        ((k, v["score"]) for k, v in summary["features"].items() if v["drifted"]), key=lambda kv: -kv[1]
    )[:5]
    html = _html(snapshot)
    html_uri = lake.write_bytes(layout.drift_report(use_case.name, day), html.encode())
    result = {
        "use_case": use_case.name,
        "day": day.isoformat(),
        "window": [days[0].isoformat(), days[-1].isoformat()],
        "model_version": str(version.version),
        "reference_partitions": sorted(partitions),
        "reference_rows": len(reference_full),
        "current_rows": len(current_full),
        "current_rows_by_source": {
            src: int((current_full[SOURCE] == src).sum()) for src in ("batch", "online")
        },
        "sampled_rows": {"reference": len(reference), "current": len(current)},
        **summary,
        "performance": performance,
        "performance_by_day": by_day,
        "drifted": bool(reasons),
        "reasons": reasons,
        "top_features": top,
        "report_uri": html_uri,
        "airflow_run_id": airflow_run_id,
    }
    result["summary_uri"] = lake.write_json(layout.drift_summary(use_case.name, day), result)
    result["mlflow_run_id"] = _log_to_mlflow(client, use_case, version, result, html)
    return result


def live_performance(
    labels: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    as_of: Any,
    out_col: str,
    task: str,
    metric: str,
    min_rows: int,
    threshold: float = 0.5,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The model's metric on predictions whose labels were known by ``as_of``: overall and per event day.

    A label metric (f1, recall, ...) labels the scores at ``threshold`` (the champion's decision threshold).

    A label delivered twice counts once (the latest delivery). Days with fewer than ``min_rows``
    labelled predictions report their row count and no value; so does the whole when it is short.
    """
    from mlops.model.training import compute_metrics

    if labels.empty or predictions.empty:
        return None, []
    known = labels[labels[LABEL_AVAILABLE_AT] <= as_of].sort_values(LABEL_AVAILABLE_AT, kind="stable")
    known = known.drop_duplicates([ENTITY, EVENT_TIME], keep="last")
    joined = known.merge(predictions[[ENTITY, EVENT_TIME, out_col]], on=[ENTITY, EVENT_TIME], how="inner")

    def value(frame: pd.DataFrame) -> float | None:
        if len(frame) < min_rows:
            return None
        return compute_metrics(
            frame[LABEL].to_numpy(), frame[out_col].to_numpy(), task, threshold=threshold
        ).get(metric)

    by_day = []
    for event_day, rows in joined.groupby(joined[EVENT_TIME].dt.date):
        by_day.append(
            {"day": event_day.isoformat(), "metric": metric, "rows": len(rows), "value": value(rows)}
        )
    total = value(joined)
    overall = {"metric": metric, "current": total, "rows": len(joined)} if total is not None else None
    return overall, by_day


def _html(snapshot: Any) -> str:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        snapshot.save_html(str(path))
        return path.read_text()


def _log_to_mlflow(client: Any, use_case: UseCase, version: Any, result: dict[str, Any], html: str) -> str:
    import mlflow

    from mlops.model import registry

    experiment_id = registry.ensure_experiment(client, use_case)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"drift-{result['day']}") as run:
        mlflow.set_tags(
            {
                tags.RUN_TYPE: "drift_check",
                tags.USE_CASE: use_case.name,
                tags.MODEL_NAME: use_case.registered_model_name,
                tags.MODEL_VERSION: result["model_version"],
                tags.DRIFT_DAY: result["day"],
                tags.DRIFTED: str(result["drifted"]),
            }
        )
        metrics = {"drift_share": result["drift_share"], "dataset_drift": float(result["dataset_drift"])}
        metrics |= {f"drift_score.{k}": v["score"] for k, v in result["features"].items()}
        if result["prediction"]:
            metrics["drift_score.prediction"] = result["prediction"]["score"]
        if result["performance"]:
            metrics[f"live_{result['performance']['metric']}"] = result["performance"]["current"]
        for entry in result["performance_by_day"]:
            if entry["value"] is not None:
                mlflow.log_metric(
                    f"live_{entry['metric']}_by_event_day",
                    entry["value"],
                    step=dt.date.fromisoformat(entry["day"]).toordinal(),
                )
        day = dt.date.fromisoformat(result["day"])
        mlflow.log_metrics(metrics, step=day.toordinal())
        mlflow.log_dict({k: v for k, v in result.items() if k != "mlflow_run_id"}, "drift_summary.json")
        mlflow.log_text(html, "drift_report.html")
        run_id = run.info.run_id
    verdict = f"{result['day']}: {'drift' if result['drifted'] else 'ok'}"
    client.set_model_version_tag(
        use_case.registered_model_name, result["model_version"], tags.LAST_DRIFT_CHECK, verdict
    )
    return run_id


def check_drift_and_alert(
    use_case: UseCase, day: dt.date, lake: Lake, store: FeatureStore, *, airflow_run_id: str
) -> DriftCheckResult:
    """The ``check_drift`` task: run the check, queue the alert on drift, return the verdict."""
    result = check_drift(use_case, day, lake, store, airflow_run_id=airflow_run_id)
    verdict = {key: result[key] for key in DriftCheckResult.__required_keys__ if key != "alert"}
    verdict["alert"] = queue_drift_alert(lake, use_case, result) if result["drifted"] else "no drift"
    return cast(DriftCheckResult, verdict)
