"""The training DAG's tasks as plain functions: prepare the training set, train and register,
evaluate against the champion and promote through the gate, and roll back."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import (
    ALIAS_OUTCOMES,
    APPROVAL_ANSWERS,
    Outcome,
    PromotionRecord,
    TrainedModel,
    TrainingSetManifest,
)
from mlops.data.feature_store import parquet_writer
from mlops.model import explain, registry
from mlops.model.promotion import APPROVE, bootstrap_difference, decide
from mlops.model.training import (
    SPLITS,
    X_y,
    build_training_set,
    compute_metrics,
    make_pipeline,
    metric_fn,
    predict_scores,
    split,
    training_window,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake
    from mlops.data.feature_store import FeatureStore

log = logging.getLogger(__name__)


class ChampionNotComparable(RuntimeError):
    """The champion cannot score the challenger's holdout, so the gate cannot judge: nothing is promoted."""


def _safe(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()[:12]


def prepare_training_set(
    use_case: UseCase, interval: dt.date, lake: Lake, store: FeatureStore, airflow_run_id: str, *, window_days: int | None = None
) -> TrainingSetManifest:
    """Build the point-in-time training set, split it and write the splits to the lake."""
    from mlops.data.tasks import refresh_stale_features

    start, end, _ = training_window(use_case, interval, window_days)
    refresh_stale_features(use_case, [start + dt.timedelta(days=i) for i in range((end - start).days + 1)], lake, store)
    frame, lineage = build_training_set(store, use_case, interval, window_days)
    lineage["feature_version"] = use_case.feature_version
    parts = split(frame, use_case)
    run_key = _safe(airflow_run_id)
    uris = {}
    for name in SPLITS:
        uris[name] = lake.write_with(layout.training_split(use_case.name, interval, run_key, name), parquet_writer(parts[name]))
    lineage_hash = hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest()
    manifest = TrainingSetManifest(
        use_case=use_case.name,
        interval=interval.isoformat(),
        run_key=run_key,
        rows={k: len(v) for k, v in parts.items()},
        lineage=lineage,
        training_set_hash=lineage_hash,
        uris=uris,
    )
    lake.write_json(layout.training_set_manifest(use_case.name, interval, run_key), manifest)
    return manifest


def read_split(lake: Lake, manifest: TrainingSetManifest, name: str) -> pd.DataFrame:
    import pandas as pd

    with lake.open_read(layout.training_split(manifest["use_case"], manifest["interval"], manifest["run_key"], name)) as fh:
        return pd.read_parquet(fh)


def _log_plots(mlflow: Any, y: Any, scores: Any, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    if task == "classification":
        for name, make in (
            ("roc_curve", lambda ax: RocCurveDisplay.from_predictions(y, scores, ax=ax)),
            ("precision_recall", lambda ax: PrecisionRecallDisplay.from_predictions(y, scores, ax=ax)),
            ("confusion_matrix", lambda ax: ConfusionMatrixDisplay.from_predictions(y, (scores >= 0.5).astype(int), ax=ax)),
        ):
            fig, ax = plt.subplots(figsize=(5, 4))
            make(ax)
            ax.set_title(f"{name.replace('_', ' ')} (holdout)")
            mlflow.log_figure(fig, f"plots/{name}.png")
            plt.close(fig)
    else:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(scores, y - scores, s=4, alpha=0.4)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (actual - predicted)")
        ax.set_title("residuals (holdout)")
        mlflow.log_figure(fig, "plots/residuals.png")
        plt.close(fig)


def _permutation_importance(model: Any, X: Any, y: Any, use_case: UseCase) -> dict[str, float]:
    from sklearn.inspection import permutation_importance

    scoring = "roc_auc" if use_case.task == "classification" else "neg_root_mean_squared_error"
    sample = X.iloc[:5000]
    result = permutation_importance(model, sample, y[:5000], scoring=scoring, n_repeats=3, random_state=use_case.model.seed, n_jobs=1)
    return {name: float(v) for name, v in zip(X.columns, result.importances_mean, strict=True)}


def _trusted_types(pipe: Any) -> list[str]:
    import skops.io

    return registry.trusted_types(skops.io.get_untrusted_types(data=skops.io.dumps(pipe)), "the model pipeline")


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    from mlops.core.settings import load_settings

    return f"{load_settings().mlflow_ui_url}/#/experiments/{experiment_id}/runs/{run_id}"


def train_and_register(
    use_case: UseCase,
    manifest: TrainingSetManifest,
    lake: Lake,
    *,
    hyperparameters: dict[str, Any] | None,
    dag_id: str,
    airflow_run_id: str,
    reason: str | None,
    estimator: str | None = None,
    parent_run_id: str | None = None,
) -> TrainedModel:
    """Fit the configured pipeline, log everything to MLflow and register a new model version.

    After a candidate search, ``estimator`` and ``hyperparameters`` are the best candidate's (its
    complete hyperparameters) and ``parent_run_id`` is the training run's MLflow run, which holds
    the candidates as child runs; the model is fitted, logged and registered in that run.
    """
    import mlflow
    from mlflow.models import infer_signature

    client = registry.configure_mlflow()
    model_name = use_case.registered_model_name
    experiment_id = registry.ensure_experiment(client, use_case)
    lineage = manifest["lineage"]
    existing = registry.find_version_for_run(client, model_name, experiment_id, airflow_run_id, manifest["training_set_hash"])
    if existing is not None:
        log.info("version %s was already registered by this run; reusing it", existing.version)
        run = client.get_run(existing.run_id)
        run_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        registry.tag_version(client, model_name, str(existing.version), run_tags | {"feature_partitions": json.dumps(lineage["feature_partitions"])})
        return TrainedModel(
            version=str(existing.version),
            run_id=existing.run_id,
            experiment_id=run.info.experiment_id,
            metrics={k: v for k, v in run.data.metrics.items() if k.startswith(("validation_", "holdout_"))},
            mlflow_run_url=mlflow_run_url(run.info.experiment_id, existing.run_id),
        )

    frames = {name: read_split(lake, manifest, name) for name in SPLITS}
    X_train, y_train = X_y(frames["train"], use_case)
    pipe = make_pipeline(use_case, hyperparameters, estimator=estimator)
    tags = {
        "use_case": use_case.name,
        "git_commit": registry.git_commit(),
        "airflow_dag_id": dag_id,
        "airflow_run_id": airflow_run_id,
        "training_set_hash": manifest["training_set_hash"],
        "training_set_uri": lake.uri(layout.training_set_dir(use_case.name, manifest["interval"], manifest["run_key"])),
        "data_window": f"{lineage['window_start']}..{lineage['window_end']}",
        "feature_version": str(lineage.get("feature_version", "")),
        "trigger_reason": reason or "",
    }
    started = mlflow.start_run(run_id=parent_run_id) if parent_run_id else mlflow.start_run(experiment_id=experiment_id, run_name=f"{use_case.name}-{manifest['interval']}")
    with started as run:
        mlflow.set_tags(tags)
        params = {"estimator": estimator or use_case.model.estimator, "seed": use_case.model.seed, "split_strategy": use_case.split.strategy}
        chosen = dict(hyperparameters or {}) if estimator else dict(use_case.model.hyperparameters) | dict(hyperparameters or {})
        params |= {f"hp.{k}": v for k, v in chosen.items()}
        params |= {f"rows.{k}": v for k, v in manifest["rows"].items()}
        mlflow.log_params(params)
        mlflow.log_dict(lineage, "data_version.json")
        pipe.fit(X_train, y_train)
        metrics: dict[str, float] = {}
        scores = {}
        for name in ("validation", "holdout"):
            X, y = X_y(frames[name], use_case)
            scores[name] = predict_scores(pipe, X, use_case.task)
            metrics |= {f"{name}_{k}": v for k, v in compute_metrics(y, scores[name], use_case.task).items()}
        mlflow.log_metrics(metrics)
        X_hold, y_hold = X_y(frames["holdout"], use_case)
        _log_plots(mlflow, y_hold, scores["holdout"], use_case.task)
        importance = _permutation_importance(pipe, X_hold, y_hold, use_case)
        mlflow.log_dict(importance, "permutation_importance.json")
        mlflow.log_metrics({f"perm_importance.{k}": v for k, v in importance.items()})
        base = explain.baseline(X_train, use_case)
        mlflow.log_dict(base, explain.BASELINE_ARTIFACT)
        sample = X_hold.head(2000)
        contrib = explain.contributions(pipe, sample, base, use_case.task)
        mlflow.log_metrics({f"contrib.{k.removeprefix(explain.PREFIX)}": float(v) for k, v in contrib.abs().mean().items()})
        mlflow.log_text(contrib.head(200).to_csv(index=False), "contributions_sample.csv")
        example = X_train.head(5)
        signature = infer_signature(example, predict_scores(pipe, example, use_case.task))
        with registry.quiet_skops_type_scan():
            info = mlflow.sklearn.log_model(
                sk_model=pipe,
                name="model",
                signature=signature,
                input_example=example,
                registered_model_name=model_name,
                # skops, not pickle. The pipeline is built here from an allow-listed sklearn estimator,
                # so the sklearn/numpy types skops asks about are ours; anything else is refused.
                skops_trusted_types=_trusted_types(pipe),
            )
        version = _one_version_per_run(client, model_name, run.info.run_id, str(info.registered_model_version))
        faults.point("register")
        registry.tag_version(client, model_name, version, tags | {"feature_partitions": json.dumps(lineage["feature_partitions"])})
        return TrainedModel(
            version=version,
            run_id=run.info.run_id,
            experiment_id=experiment_id,
            metrics=metrics,
            mlflow_run_url=mlflow_run_url(experiment_id, run.info.run_id),
        )


def _one_version_per_run(client: Any, model_name: str, run_id: str, version: str) -> str:
    """The run's one model version. A registration whose answer was lost and that MLflow's client
    sent again registers the same run twice; the later copies (no alias points at them yet) go."""
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'"))
    for extra in versions[1:]:
        log.warning("model %s v%s duplicates v%s (same MLflow run %s, a retried registration); deleting it", model_name, extra, versions[0], run_id)
        client.delete_model_version(model_name, str(extra))
    return str(versions[0]) if versions else version


def evaluate_and_promote(
    use_case: UseCase,
    trained: TrainedModel,
    manifest: TrainingSetManifest,
    lake: Lake,
    *,
    mode: str | None,
    dag_id: str,
    airflow_run_id: str,
) -> PromotionRecord:
    """Score challenger and champion on this run's holdout, decide, move aliases, record the decision."""
    import mlflow

    client = registry.configure_mlflow()
    name = use_case.registered_model_name
    version = trained["version"]
    for entry in registry.promotion_history(lake, use_case.name):
        if str(entry["version"]) == version and entry["airflow_run_id"] == airflow_run_id:
            log.info("decision for version %s already recorded by this run: %s", version, entry["outcome"])
            return entry

    # Claim, then act: the decision is written down before any alias moves, so a retry after a
    # crash finishes that decision (against the champion it was taken against) instead of
    # deciding again against aliases it has itself already moved.
    intent = layout.promotion_intent(use_case.name, airflow_run_id, version)
    if lake.exists(intent):
        entry = lake.read_json(intent)
        log.info("finishing the decision this run took before it was interrupted: %s", entry["outcome"])
    else:
        entry = _decide(use_case, trained, manifest, lake, client, mode=mode, dag_id=dag_id, airflow_run_id=airflow_run_id)
        lake.write_json(intent, entry)
    if entry["outcome"] in ALIAS_OUTCOMES:  # not dry runs, not disabled
        registry.apply_aliases(client, use_case, version, entry["promoted"], entry["champion_before"])
    faults.point("promote")
    client.set_model_version_tag(name, version, "promotion_outcome", entry["outcome"])
    client.set_model_version_tag(name, version, "promotion_reason", entry["reason"][:5000])
    with mlflow.start_run(run_id=trained["run_id"]):
        mlflow.set_tags({"promotion_outcome": entry["outcome"], "promotion_reason": entry["reason"][:5000]})
        comparison: dict[str, Any] = entry.get("comparison") or {}
        if comparison:
            mlflow.log_metrics({"promotion.improvement": comparison["improvement"], "promotion.ci_low": comparison["ci_low"]})
    registry.record_decision(lake, use_case.name, entry)
    lake.delete(intent)
    log.info("promotion decision for %s v%s: %s - %s", name, version, entry["outcome"], entry["reason"])
    return entry


def _decide(
    use_case: UseCase,
    trained: TrainedModel,
    manifest: TrainingSetManifest,
    lake: Lake,
    client: Any,
    *,
    mode: str | None,
    dag_id: str,
    airflow_run_id: str,
) -> PromotionRecord:
    """Score challenger and champion on the holdout and decide; changes nothing."""
    name, version = use_case.registered_model_name, trained["version"]
    holdout = read_split(lake, manifest, "holdout")
    X, y = X_y(holdout, use_case)
    challenger = registry.load_model(name, version)
    challenger_scores = predict_scores(challenger, X, use_case.task)
    challenger_metrics = compute_metrics(y, challenger_scores, use_case.task)

    champion = registry.alias_version(client, name, registry.CHAMPION)
    comparison = None
    if champion is not None and str(champion.version) != version:
        # Fail closed: an outage while loading the champion propagates (the task retries), and a
        # champion that cannot score this holdout stops the gate; neither promotes the challenger.
        champion_model = registry.load_model(name, champion.version)
        try:
            champion_scores = predict_scores(champion_model, X, use_case.task)
        except (KeyError, ValueError, TypeError) as exc:
            raise ChampionNotComparable(
                f"use case {use_case.name!r}: champion v{champion.version} cannot score the holdout of challenger "
                f"v{version} ({type(exc).__name__}: {exc}); nothing was promoted. If the features changed on "
                "purpose, review the challenger and move the 'champion' alias by hand."
            ) from exc
        comparison = bootstrap_difference(
            y,
            challenger_scores,
            champion_scores,
            metric_fn(use_case.promotion.metric, use_case.task),
            higher_is_better=use_case.promotion.higher_is_better,
            samples=use_case.promotion.bootstrap_samples,
            confidence=use_case.promotion.confidence,
            seed=use_case.model.seed,
        )
    has_champion = champion is not None and str(champion.version) != version
    decision = decide(challenger_metrics, use_case.promotion, comparison=comparison, has_champion=has_champion, mode=mode)
    champion_before = str(champion.version) if champion is not None else None
    promoted = decision.promote and decision.apply
    return PromotionRecord(
        use_case=use_case.name,
        decided_at=registry.now_iso(),
        version=version,
        champion_before=champion_before,
        outcome=decision.outcome,
        promoted=promoted,
        reason=decision.reason,
        metric=use_case.promotion.metric,
        challenger_metrics=challenger_metrics,
        comparison=decision.as_dict()["comparison"],
        threshold_failures=decision.threshold_failures,
        mode=mode or use_case.promotion.mode,
        aliases_after=registry.aliases_after(version, promoted, champion_before) if decision.outcome in ALIAS_OUTCOMES else {},
        airflow_dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        mlflow_run_id=trained["run_id"],
        holdout_rows=len(holdout),
        mlflow_run_url=trained["mlflow_run_url"],
        lineage={
            "data_window": [manifest["lineage"]["window_start"], manifest["lineage"]["window_end"]],
            "feature_partitions": len(manifest["lineage"]["feature_partitions"]),
            "training_rows": manifest["rows"],
            "training_set_hash": manifest["training_set_hash"],
            "training_set_uri": lake.uri(layout.training_set_dir(use_case.name, manifest["interval"], manifest["run_key"])),
            "git_commit": registry.git_commit(),
        },
    )


def approval_request(entry: PromotionRecord, use_case: UseCase) -> tuple[str, str]:
    """Subject and body (Markdown) of the human-approval request: the gate's evidence."""
    subject = f"Promote {use_case.registered_model_name} v{entry['version']} to champion?"
    metrics = entry.get("challenger_metrics") or {}
    lines = [
        f"**Use case** {use_case.name} · **challenger** v{entry['version']} · **champion now** "
        f"{'v' + entry['champion_before'] if entry['champion_before'] else 'none'}",
        "",
        f"**Gate** {entry['reason'].removeprefix('awaiting approval: ')}",
        "",
        "| metric | challenger |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())],
        "",
        f"Holdout rows: {entry.get('holdout_rows', 'n/a')} · MLflow run: {entry.get('mlflow_run_url', 'n/a')}",
        "",
        f"Approve moves the `champion` alias to v{entry['version']}; Reject, or no answer within "
        f"{use_case.promotion.approval_timeout_hours:g} hours, leaves production as it is.",
    ]
    return subject, "\n".join(lines)


def apply_approval(
    use_case: UseCase, gate: PromotionRecord, response: dict[str, Any] | None, lake: Lake, *, dag_id: str, airflow_run_id: str
) -> PromotionRecord:
    """Act on a person's answer to an approval request and record it in the ledger (safe to repeat).

    ``response`` is the human-in-the-loop task's result (``chosen_options``, ``responded_by_user``,
    ``params_input``); a timed-out request carries the default, Reject, and no user. Approve moves
    the champion alias only if the champion is still the one the gate compared against.
    """
    client = registry.configure_mlflow()
    name, version = use_case.registered_model_name, gate["version"]
    for done in registry.promotion_history(lake, use_case.name):
        if done["airflow_run_id"] == airflow_run_id and str(done["version"]) == version and done["outcome"] in APPROVAL_ANSWERS:
            return done
    response = response or {}
    chosen = list(response.get("chosen_options") or [])
    user = response.get("responded_by_user") or None
    who = (user.get("name") or user.get("id")) if isinstance(user, dict) else None
    comment = str((response.get("params_input") or {}).get("comment") or "").strip()[:1000]
    current = registry.alias_version(client, name, registry.CHAMPION)
    current_version = str(current.version) if current is not None else None
    promoted = False
    outcome: Outcome
    if chosen == [APPROVE] and who:
        if current_version == version:
            outcome, note = "approved", f"approved by {who}; v{version} is the champion"  # a retry after the move
            promoted = True
        elif current_version != gate["champion_before"]:
            outcome = "approval_stale"
            note = (
                f"approved by {who}, but the champion changed from v{gate['champion_before']} to v{current_version} "
                "while the request waited; nothing moved. Re-run training to compare against the new champion."
            )
        else:
            registry.apply_aliases(client, use_case, version, True, gate["champion_before"])
            outcome, note, promoted = "approved", f"approved by {who}", True
    elif who:
        outcome, note = "rejected_by_reviewer", f"rejected by {who}"
    else:
        outcome, note = "approval_timed_out", (
            f"no answer within {use_case.promotion.approval_timeout_hours:g} hours: not promoted"
        )
    reason = f"{note}{': ' + comment if comment else ''} (gate: {gate['reason'].removeprefix('awaiting approval: ')})"
    client.set_model_version_tag(name, version, "promotion_outcome", outcome)
    client.set_model_version_tag(name, version, "promotion_reason", reason[:5000])
    entry = PromotionRecord(
        **{k: v for k, v in gate.items() if k not in ("decided_at", "outcome", "promoted", "reason", "aliases_after")},  # type: ignore[typeddict-item]
        decided_at=registry.now_iso(),
        outcome=outcome,
        promoted=promoted,
        reason=reason,
        aliases_after=registry.aliases_after(version, promoted, gate["champion_before"]) if promoted else {"champion": current_version, "previous_champion": None},
        reviewed_by=who,
        reviewed_at=str(response.get("responded_at") or "") or None,
        review_comment=comment,
    )
    registry.record_decision(lake, use_case.name, entry)
    log.info("approval of %s v%s: %s - %s", name, version, outcome, reason)
    return entry
