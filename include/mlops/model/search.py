"""Candidate search: several models trained in parallel, the best on validation goes to the gate.

The training DAG plans the candidates (:func:`plan_candidates`), fits each in its own mapped task
(:func:`train_candidate`, so Celery spreads them over the workers), then keeps the best on the
validation split by the gate's metric (:func:`select_best`). Only that one is registered (by
``train_and_register``, in the training run's MLflow run) and compared with the champion on the
holdout. Every candidate is an MLflow child run of the training run, with its parameters and
validation metrics. Deterministic for ``model.seed``: the same config plans the same candidates
and each fit uses the seed. A candidate that fails is recorded as failed; the run fails only if
every candidate does.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import socket
import traceback
from typing import TYPE_CHECKING, Any

from mlops.core.results import CandidateResult
from mlops.model import registry, tags
from mlops.model.threshold import choose_for
from mlops.model.training import DECISION_THRESHOLD, X_y, compute_metrics, make_pipeline, predict_scores
from mlops.model.training_set import read_split

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake
    from mlops.core.results import TrainingSetManifest

log = logging.getLogger(__name__)
MAX_BUDGET = 200


def expand_candidates(
    use_case: UseCase, overrides: dict[str, Any] | None = None, budget: int | None = None
) -> list[dict[str, Any]]:
    """The candidates of a training run: the configured model (with ``overrides``) first, then the
    config's explicit candidates, then samples of its search space, ``budget`` in all.

    ``budget`` (a run parameter) narrows or widens the config's; without a search section there is
    one candidate unless a budget asks for more, which samples around nothing and so stays one.
    """
    import numpy as np

    spec = use_case.model.search
    base_hp: dict[str, Any] = dict(use_case.model.hyperparameters) | dict(overrides or {})
    base: dict[str, Any] = {"estimator": use_case.model.estimator, "hyperparameters": base_hp}
    wanted = budget if budget is not None else (spec.budget if spec else 1)
    if not 1 <= wanted <= MAX_BUDGET:
        raise ValueError(f"search budget {wanted} is outside 1..{MAX_BUDGET}")
    out = [base]
    seen = {_key(base)}

    def add(candidate: dict[str, Any]) -> None:
        if len(out) < wanted and _key(candidate) not in seen:
            seen.add(_key(candidate))
            out.append(candidate)

    if spec is not None:
        for extra in spec.candidates:
            add({"estimator": extra.estimator, "hyperparameters": dict(extra.hyperparameters)})
        names = sorted(spec.space)
        if names and spec.sampler == "grid":
            for combo in itertools.product(*(spec.space[n].values or [] for n in names)):
                add(
                    {
                        "estimator": base["estimator"],
                        "hyperparameters": base_hp | dict(zip(names, combo, strict=True)),
                    }
                )
        elif names:
            rng = np.random.default_rng(use_case.model.seed)
            for _ in range(wanted * 20):  # draws until the budget is met (duplicates are skipped)
                if len(out) >= wanted:
                    break
                add(
                    {
                        "estimator": base["estimator"],
                        "hyperparameters": base_hp | {n: _draw(spec.space[n], rng) for n in names},
                    }
                )
    return [c | {"name": f"c{i:02d}-{c['estimator'].rsplit('.', 1)[-1]}"} for i, c in enumerate(out)]


def _draw(space: Any, rng: Any) -> Any:
    if space.values is not None:
        value = space.values[int(rng.integers(len(space.values)))]
        return value.item() if hasattr(value, "item") else value
    low, high = float(space.low), float(space.high)
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if space.log else rng.uniform(low, high)
    return round(float(value)) if space.integer else round(float(value), 6)


def _key(candidate: dict[str, Any]) -> str:
    return json.dumps([candidate["estimator"], candidate["hyperparameters"]], sort_keys=True, default=str)


def parent_run(use_case: UseCase, manifest: TrainingSetManifest, airflow_run_id: str) -> str:
    """The training run's MLflow run (created once per Airflow run and training set; a retry reuses it)."""
    client = registry.configure_mlflow()
    experiment_id = registry.ensure_experiment(client, use_case)
    run_tags = {tags.AIRFLOW_RUN_ID: airflow_run_id, tags.TRAINING_SET_HASH: manifest["training_set_hash"]}
    found = client.search_runs(
        [experiment_id],
        filter_string=tags.search_filter(run_tags),
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id,
        run_name=f"{use_case.name}-{manifest['interval']}",
        tags=run_tags | {tags.USE_CASE: use_case.name},
    )
    return str(run.info.run_id)


def plan_candidates(
    use_case: UseCase,
    manifest: TrainingSetManifest,
    *,
    airflow_run_id: str,
    overrides: dict[str, Any] | None,
    budget: int | None,
) -> list[dict[str, Any]]:
    """The ``plan_candidates`` task: the candidates, each naming the training run's MLflow run."""
    parent = parent_run(use_case, manifest, airflow_run_id)
    candidates = expand_candidates(use_case, overrides, budget)
    log.info(
        "%d candidate(s) for %r: %s", len(candidates), use_case.name, ", ".join(c["name"] for c in candidates)
    )
    return [c | {"parent_run_id": parent} for c in candidates]


def selection_metric(use_case: UseCase) -> str:
    return f"validation_{use_case.promotion.metric}"


def train_candidate(
    use_case: UseCase,
    manifest: TrainingSetManifest,
    lake: Lake,
    candidate: dict[str, Any],
    *,
    airflow_run_id: str,
) -> CandidateResult:
    """Fit one candidate on the training split, score it on validation, log it as a child run."""
    from mlops.core.settings import load_settings

    client = registry.configure_mlflow()
    parent = candidate["parent_run_id"]
    experiment_id = client.get_run(parent).info.experiment_id
    existing = client.search_runs(
        [experiment_id],
        filter_string=tags.search_filter({tags.PARENT_RUN_ID: parent, tags.CANDIDATE: candidate["name"]}),
        max_results=1,
    )
    run = existing[0] if existing else client.create_run(
        experiment_id,
        run_name=candidate["name"],
        tags={
            tags.PARENT_RUN_ID: parent, tags.CANDIDATE: candidate["name"], tags.RUN_TYPE: "candidate",
            tags.AIRFLOW_RUN_ID: airflow_run_id,
        },
    )  # fmt: skip
    run_id = run.info.run_id
    worker = load_settings().worker_name or socket.gethostname()
    result = CandidateResult(
        name=candidate["name"], estimator=candidate["estimator"], hyperparameters=candidate["hyperparameters"],
        run_id=run_id, parent_run_id=parent, worker=worker, status="failed", metrics={}, error=None,
    )  # fmt: skip
    # Reading the splits is the platform's work: a storage error fails the task (and retries); only
    # the candidate's own fit and evaluation below count as the candidate failing.
    train, validation = read_split(lake, manifest, "train"), read_split(lake, manifest, "validation")
    X_train, y_train = X_y(train, use_case)
    X_val, y_val = X_y(validation, use_case)
    try:
        pipe = make_pipeline(use_case, candidate["hyperparameters"], estimator=candidate["estimator"])
        pipe.fit(X_train, y_train)
        val_scores = predict_scores(pipe, X_val, use_case.task)
        # Label metrics at the candidate's own threshold, chosen as training will choose it.
        threshold = choose_for(use_case, y_val, val_scores)
        cut = threshold.value if threshold is not None else DECISION_THRESHOLD
        metrics = {
            f"validation_{k}": v
            for k, v in compute_metrics(y_val, val_scores, use_case.task, threshold=cut).items()
        }
    except (
        Exception
    ) as exc:  # a candidate's own failure (bad hyperparameters, a fit that diverges) is its result
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        client.set_tag(run_id, tags.ERROR, result["error"])
        client.log_text(run_id, traceback.format_exc(), "error.txt")
        client.set_terminated(run_id, status="FAILED")
        log.warning("candidate %s failed: %s", candidate["name"], result["error"])
        return result
    for key, value in {
        "estimator": candidate["estimator"],
        **{f"hp.{k}": v for k, v in candidate["hyperparameters"].items()},
        **({tags.DECISION_THRESHOLD: threshold.value} if threshold is not None else {}),
    }.items():
        client.log_param(run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_tag(run_id, tags.WORKER, worker)
    client.set_terminated(run_id, status="FINISHED")
    result["status"], result["metrics"] = "ok", metrics
    log.info(
        "candidate %s on %s: %s = %.4f",
        candidate["name"],
        worker,
        selection_metric(use_case),
        metrics.get(selection_metric(use_case), float("nan")),
    )
    return result


def select_best(use_case: UseCase, results: list[CandidateResult]) -> CandidateResult:
    """The best candidate on validation by the gate's metric; ValueError if none succeeded."""
    metric, higher = selection_metric(use_case), use_case.promotion.higher_is_better
    ok = [r for r in results if r and r["status"] == "ok" and r["metrics"].get(metric) is not None]
    if not ok:
        failures = "; ".join(f"{r['name']}: {r['error']}" for r in results if r)
        raise ValueError(f"use case {use_case.name!r}: every candidate failed ({failures or 'no results'})")
    # Ties go to the earlier candidate (the configured model first): deterministic.
    order = sorted(
        range(len(ok)), key=lambda i: ((-1 if higher else 1) * ok[i]["metrics"][metric], ok[i]["name"])
    )
    best = ok[order[0]]
    ranking = [
        {"name": ok[i]["name"], metric: ok[i]["metrics"][metric], "worker": ok[i]["worker"]} for i in order
    ]
    client = registry.configure_mlflow()
    client.log_dict(
        best["parent_run_id"],
        {
            "metric": metric,
            "ranking": ranking,
            "failed": [r["name"] for r in results if r and r["status"] != "ok"],
        },
        "candidates.json",
    )
    client.set_tag(best["parent_run_id"], tags.BEST_CANDIDATE, best["name"])
    log.info(
        "best of %d candidate(s) for %r: %s (%s %.4f)",
        len(ok),
        use_case.name,
        best["name"],
        metric,
        best["metrics"][metric],
    )
    return best
