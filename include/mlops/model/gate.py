"""The promotion gate: compare the new version with the champion, decide, move aliases, record.

The ``evaluate_and_promote`` task. It checks that the challenger's holdout outputs are sane (its
labels at its own decision threshold, :mod:`mlops.model.threshold`), scores challenger, champion
and the trivial baseline (fitted on this run's training split) on this
run's holdout, overall and per declared slice, lets the pure :mod:`mlops.model.promotion` decide,
writes the decision and its evidence down before any alias moves (so a retry finishes the same
decision), then moves the aliases, tags the version and the run, writes the evidence pack
(:mod:`mlops.model.evidence`) and appends the decision, linking the pack, to the promotion ledger.
In approval mode a person answers next (:mod:`mlops.model.approval`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import ALIAS_OUTCOMES, Cause, PromotionRecord, TrainedModel, TrainingSetManifest
from mlops.model import evidence, registry, tags
from mlops.model.promotion import (
    check_outputs,
    decide,
    gather_evidence,
    staleness,
)
from mlops.model.threshold import DEFAULT_THRESHOLD, threshold_of
from mlops.model.threshold import describe as describe_threshold
from mlops.model.training import (
    X_y,
    compute_metrics,
    fit_baseline,
    predict_scores,
)
from mlops.model.training_set import read_split

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)


class ChampionNotComparable(RuntimeError):
    """The champion cannot score the challenger's holdout, so the gate cannot judge: nothing is promoted."""


def evaluate_and_promote(
    use_case: UseCase,
    trained: TrainedModel,
    manifest: TrainingSetManifest,
    lake: Lake,
    *,
    mode: str | None,
    dag_id: str,
    airflow_run_id: str,
    triggered_by: Cause | None = None,
    accept_stale: bool = False,
) -> PromotionRecord:
    """Score challenger and champion on this run's holdout, decide, move aliases, record the decision.

    ``accept_stale``: a person asked to judge a challenger whose data window ends before the
    champion's (refused otherwise; recorded either way).
    """
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
        entry = _decide(
            use_case, trained, manifest, lake, client,
            mode=mode, dag_id=dag_id, airflow_run_id=airflow_run_id, accept_stale=accept_stale,
        )  # fmt: skip
        if triggered_by is not None:
            entry["triggered_by"] = triggered_by
        lake.write_json(intent, entry)
    if entry["outcome"] in ALIAS_OUTCOMES:  # not dry runs, not disabled
        registry.apply_aliases(client, use_case, version, entry["promoted"], entry["champion_before"])
    faults.point("promote")
    decision_tags = tags.promotion(entry["outcome"], entry["reason"])
    registry.tag_version(client, name, version, decision_tags)
    with mlflow.start_run(run_id=trained["run_id"]):
        mlflow.set_tags(decision_tags)
        comparison: dict[str, Any] = entry.get("comparison") or {}
        if comparison:
            mlflow.log_metrics(
                {"promotion.improvement": comparison["improvement"], "promotion.ci_low": comparison["ci_low"]}
            )
        baseline: dict[str, Any] = entry.get("baseline") or {}
        if baseline:
            mlflow.log_metrics(
                {
                    "promotion.baseline_improvement": baseline["improvement"],
                    "promotion.baseline_ci_low": baseline["ci_low"],
                }
            )
    entry["evidence_uri"], entry["evidence_html_uri"] = evidence.write_pack(lake, entry)
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
    accept_stale: bool = False,
) -> PromotionRecord:
    """Score challenger, champion and baseline on the holdout and decide; changes nothing."""
    mode = use_case.promotion.run_mode(mode)  # a looser mode than configured is refused here too
    spec = use_case.promotion
    name, version = use_case.registered_model_name, trained["version"]
    holdout = read_split(lake, manifest, "holdout")
    X, y = X_y(holdout, use_case)
    challenger = registry.load_model(name, version)
    challenger_scores = predict_scores(challenger, X, use_case.task)
    # The labels it gives are at the threshold it was registered with (0.5 for an older version).
    challenger_entry = client.get_model_version(name, version)
    cut = threshold_of(challenger_entry)
    # Sane outputs first: NaN/inf predictions cannot be scored, so nothing below is computed for them.
    sanity = check_outputs(challenger_scores, use_case.task, threshold=cut, label_range=label_range(use_case))
    challenger_metrics = (
        compute_metrics(y, challenger_scores, use_case.task, threshold=cut) if sanity.scorable else {}
    )
    threshold = None
    if use_case.task == "classification" and sanity.scorable:
        threshold = describe_threshold(challenger_entry, y, challenger_scores)

    champion = registry.alias_version(client, name, registry.CHAMPION)
    has_champion = champion is not None and str(champion.version) != version
    champion_scores = None
    if champion is not None and has_champion:
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

    comparison = baseline = None
    slices = []
    if sanity.scorable:
        train = read_split(lake, manifest, "train")
        baseline_scores = predict_scores(fit_baseline(*X_y(train, use_case), use_case.task), X, use_case.task)
        champion_cut = threshold_of(champion) if has_champion else DEFAULT_THRESHOLD
        gathered = gather_evidence(
            use_case,
            holdout,
            y,
            (challenger_scores, baseline_scores, champion_scores),
            thresholds=(cut, champion_cut),
        )
        baseline, comparison, slices = gathered.baseline, gathered.comparison, gathered.slices
    challenger_end = dt.date.fromisoformat(str(manifest["lineage"]["window_end"]))
    champion_end = registry.window_end(champion) if has_champion else None
    stale = None
    if has_champion and champion is not None:
        stale = staleness(challenger_end, champion_end, str(champion.version), accepted=accept_stale)
    decision = decide(
        challenger_metrics,
        spec,
        comparison=comparison,
        has_champion=has_champion,
        sanity=sanity,
        baseline=baseline,
        slices=slices,
        mode=mode,
        stale=stale,
    )
    champion_before = str(champion.version) if champion is not None else None
    promoted = decision.promote and decision.apply
    evidence = decision.as_dict()
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
        decision_threshold=threshold,
        comparison=evidence["comparison"],
        threshold_failures=decision.threshold_failures,
        failed_checks=decision.failures,
        sanity=evidence["sanity"],
        baseline=evidence["baseline"],
        slices=evidence["slices"],
        mode=mode,
        aliases_after=registry.aliases_after(version, promoted, champion_before)
        if decision.outcome in ALIAS_OUTCOMES
        else {},
        airflow_dag_id=dag_id,
        airflow_run_id=airflow_run_id,
        mlflow_run_id=trained["run_id"],
        holdout_rows=len(holdout),
        mlflow_run_url=trained["mlflow_run_url"],
        freshness={
            "challenger_window_end": challenger_end.isoformat(),
            "champion_window_end": champion_end.isoformat() if champion_end else None,
            "stale": champion_end is not None and challenger_end < champion_end,
            "accepted_by_request": accept_stale,
        },
        lineage={
            "data_window": [manifest["lineage"]["window_start"], manifest["lineage"]["window_end"]],
            "feature_partitions": len(manifest["lineage"]["feature_partitions"]),
            "training_rows": manifest["rows"],
            "training_set_hash": manifest["training_set_hash"],
            "training_set_uri": lake.uri(
                layout.training_set_dir(use_case.name, manifest["interval"], manifest["run_key"])
            ),
            "git_commit": registry.git_commit(),
        },
    )


def label_range(use_case: UseCase) -> tuple[float | None, float | None] | None:
    """The declared (min, max) of a regression target, from its column in the batch or the label feed."""
    if use_case.task != "regression":
        return None
    if use_case.labels is not None:
        column = use_case.labels.columns[use_case.labels.label]
    else:
        assert use_case.schema_.target is not None  # the config requires a target or a label feed
        column = use_case.schema_.columns[use_case.schema_.target]
    if column.min is None and column.max is None:
        return None
    return (column.min, column.max)
