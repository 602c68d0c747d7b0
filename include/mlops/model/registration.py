"""Train the chosen model, log it to MLflow and register one model version per training run.

The ``train_model`` task: fit on the training split, choose a classifier's decision threshold on
the validation split (:mod:`mlops.model.threshold`), log parameters, metrics (label metrics at
that threshold), plots, permutation importance, the explanation baseline and the model (as
skops, never pickle), and register it with its threshold as a version tag. A
retry of the same Airflow run on the same training set finds the version the earlier try
registered (through the run's tags) and returns it instead of registering a second one.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import TrainedModel, TrainingSetManifest
from mlops.model import explain, registry, tags
from mlops.model import threshold as decision
from mlops.model.plots import log_holdout_plots
from mlops.model.training import SPLITS, X_y, compute_metrics, fit_baseline, make_pipeline, predict_scores
from mlops.model.training_set import read_split

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)


def _permutation_importance(model: Any, X: Any, y: Any, use_case: UseCase) -> dict[str, float]:
    from sklearn.inspection import permutation_importance

    scoring = "roc_auc" if use_case.task == "classification" else "neg_root_mean_squared_error"
    sample = X.iloc[:5000]
    result = permutation_importance(
        model, sample, y[:5000], scoring=scoring, n_repeats=3, random_state=use_case.model.seed, n_jobs=1
    )
    return {name: float(v) for name, v in zip(X.columns, result.importances_mean, strict=True)}


def skops_trusted_types(pipe: Any) -> list[str]:
    """The types skops needs trusted to store ``pipe``; UntrustedModel if one is outside the policy."""
    import skops.io

    return registry.trusted_types(
        skops.io.get_untrusted_types(data=skops.io.dumps(pipe)), "the model pipeline"
    )


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
    partitions_tag = {tags.FEATURE_PARTITIONS: json.dumps(lineage["feature_partitions"])}
    existing = registry.find_version_for_run(
        client, model_name, experiment_id, airflow_run_id, manifest["training_set_hash"]
    )
    if existing is not None:
        log.info("version %s was already registered by this run; reusing it", existing.version)
        run = client.get_run(existing.run_id)
        run_tags = {k: v for k, v in run.data.tags.items() if not k.startswith(tags.MLFLOW_PREFIX)}
        registry.tag_version(client, model_name, str(existing.version), run_tags | partitions_tag)
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
    training_set_dir = layout.training_set_dir(use_case.name, manifest["interval"], manifest["run_key"])
    lineage_tags = {
        tags.USE_CASE: use_case.name,
        tags.GIT_COMMIT: registry.git_commit(),
        tags.AIRFLOW_DAG_ID: dag_id,
        tags.AIRFLOW_RUN_ID: airflow_run_id,
        tags.TRAINING_SET_HASH: manifest["training_set_hash"],
        tags.TRAINING_SET_URI: lake.uri(training_set_dir),
        tags.DATA_WINDOW: f"{lineage['window_start']}..{lineage['window_end']}",
        tags.FEATURE_VERSION: str(lineage.get("feature_version", "")),
        tags.TRIGGER_REASON: reason or "",
    }
    started = (
        mlflow.start_run(run_id=parent_run_id)
        if parent_run_id
        else mlflow.start_run(experiment_id=experiment_id, run_name=f"{use_case.name}-{manifest['interval']}")
    )
    with started as run:
        mlflow.set_tags(lineage_tags)
        params = {
            "estimator": estimator or use_case.model.estimator,
            "seed": use_case.model.seed,
            "split_strategy": use_case.split.strategy,
        }
        chosen = (
            dict(hyperparameters or {})
            if estimator
            else dict(use_case.model.hyperparameters) | dict(hyperparameters or {})
        )
        params |= {f"hp.{k}": v for k, v in chosen.items()}
        params |= {f"rows.{k}": v for k, v in manifest["rows"].items()}
        mlflow.log_params(params)
        mlflow.log_dict(lineage, "data_version.json")
        pipe.fit(X_train, y_train)
        scores, truth = {}, {}
        for name in ("validation", "holdout"):
            X, truth[name] = X_y(frames[name], use_case)
            scores[name] = predict_scores(pipe, X, use_case.task)
        cut = decision.DEFAULT_THRESHOLD
        threshold = decision.choose_for(use_case, truth["validation"], scores["validation"])
        if threshold is not None:
            # On the run before the model is registered: a retry copies the run's tags to the version.
            cut = threshold.value
            mlflow.set_tags(threshold.as_tags())
            mlflow.log_param(tags.DECISION_THRESHOLD, threshold.value)
            log.info("decision threshold %.4f (%s on validation)", threshold.value, threshold.objective)
        metrics: dict[str, float] = {}
        for name in ("validation", "holdout"):
            computed = compute_metrics(truth[name], scores[name], use_case.task, threshold=cut)
            metrics |= {f"{name}_{k}": v for k, v in computed.items()}
        mlflow.log_metrics(metrics)
        X_hold, y_hold = X_y(frames["holdout"], use_case)
        # The trivial baseline the gate holds the model against, for a reader of the run.
        dummy = predict_scores(fit_baseline(X_train, y_train, use_case.task), X_hold, use_case.task)
        dummy_metrics = compute_metrics(y_hold, dummy, use_case.task)
        mlflow.log_metrics({f"baseline.holdout_{k}": v for k, v in dummy_metrics.items()})
        log_holdout_plots(mlflow, y_hold, scores["holdout"], use_case.task, threshold=cut)
        importance = _permutation_importance(pipe, X_hold, y_hold, use_case)
        mlflow.log_dict(importance, "permutation_importance.json")
        mlflow.log_metrics({f"perm_importance.{k}": v for k, v in importance.items()})
        base = explain.baseline(X_train, use_case)
        mlflow.log_dict(base, explain.BASELINE_ARTIFACT)
        sample = X_hold.head(2000)
        contrib = explain.contributions(pipe, sample, base, use_case.task)
        mlflow.log_metrics(
            {f"contrib.{k.removeprefix(explain.PREFIX)}": float(v) for k, v in contrib.abs().mean().items()}
        )
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
                skops_trusted_types=skops_trusted_types(pipe),
            )
        version = _one_version_per_run(
            client, model_name, run.info.run_id, str(info.registered_model_version)
        )
        faults.point("register")
        threshold_tags = threshold.as_tags() if threshold is not None else {}
        registry.tag_version(client, model_name, version, lineage_tags | partitions_tag | threshold_tags)
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
    versions = sorted(
        int(v.version) for v in client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    )
    for extra in versions[1:]:
        log.warning(
            "model %s v%s duplicates v%s (same MLflow run %s, a retried registration); deleting it",
            model_name,
            extra,
            versions[0],
            run_id,
        )
        client.delete_model_version(model_name, str(extra))
    return str(versions[0]) if versions else version
