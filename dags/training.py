"""Training per use case: point-in-time training set -> fit + MLflow -> gated promotion.

One DAG per use case, id `<name>_training`. Wiring only; the logic is in `mlops.model`.
"""

from __future__ import annotations

from airflow.sdk import Param, TriggerRule, get_current_context, task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.approval import approval_task
from mlops.orchestration.assets import champion_asset, features_asset

PIPELINE = dag_support.Pipeline(
    kind="training",
    description="Train, track and promote the {name} model",
    doc="""
### {name}: training and promotion

**What it does.** Builds a point-in-time training set from the feature store (the
{use_case.training.window_days} days up to the run's interval, labels known by then), splits it
({split}), fits the candidate models in parallel (`{use_case.model.estimator}` as configured, plus the
search's candidates: {candidates} by default; each an MLflow child run), keeps the best on the
validation split, refits it with a fixed seed, logs params, metrics, plots, permutation
importance, data version and git commit to MLflow (experiment `mlops/{name}`), registers a new
version of `{model}`, then runs the promotion gate: thresholds, then champion vs challenger on
the same holdout with a paired bootstrap. Only a clear win moves the `champion` alias.

**Triggers.** {triggers}; the UI form; the REST API; the drift DAG (with a `reason`).

**Params.** `interval` (last day of the window; empty: the day of the triggering feature event or
the run's data interval, else, for a run with no logical date, the latest closed day, yesterday
UTC, logged and named in `prepare_training_set`'s result), `hyperparameters` (overrides),
`promotion_mode` (the use case's mode, `{use_case.promotion.mode}`, or a stricter one: the
configured mode is a floor no run can lower), `reason`.

**Approval.** In `approval` mode a challenger that passes the gate waits in `approve_promotion`
(Airflow's human-in-the-loop: Required Actions, the ML platform page, or the REST API) with the
gate's evidence; Approve moves `champion`, Reject or no answer within
{use_case.promotion.approval_timeout_hours:g} hours leaves production as it is. Every answer, with
who gave it, is in the ledger.

**When it fails.** "not enough data": run the data DAG for more days. A rejected challenger is
not a failure: read the reason in the promotion history or the model version's tags.
""",
)


def build(use_case):
    from airflow.sdk import AssetOrTimeSchedule

    name = use_case.name
    triggers = []
    schedule = None
    if use_case.training.on_new_features and use_case.training.schedule:
        schedule = AssetOrTimeSchedule(
            timetable=dag_support.day_timetable(use_case.training.schedule),
            assets=[features_asset(name)],
        )
        triggers.append(f"schedule `{use_case.training.schedule}` or a new feature partition")
    elif use_case.training.on_new_features:
        schedule = [features_asset(name)]
        triggers.append("every new feature partition")
    elif use_case.training.schedule:
        schedule = dag_support.day_timetable(use_case.training.schedule)
        triggers.append(f"schedule `{use_case.training.schedule}`")
    else:
        triggers.append("no schedule (on demand)")

    budget = use_case.model.search.budget if use_case.model.search else 1
    split = use_case.split
    with PIPELINE.dag(
        use_case,
        schedule=schedule,
        doc_fields={
            "split": f"{split.strategy}: validation {split.validation}, holdout {split.holdout}",
            "candidates": budget,
            "triggers": "; ".join(triggers),
        },
        interval="Last day of the training window; empty = the run's data interval, else yesterday.",
        params={
            "hyperparameters": Param(
                {},
                type="object",
                title="Hyperparameter overrides",
                description=f"Merged over the config's {dict(use_case.model.hyperparameters)}.",
            ),
            "promotion_mode": Param(
                use_case.promotion.mode,
                enum=use_case.promotion.allowed_modes(),
                title="Promotion mode",
                description=(
                    f"The use case's mode ({use_case.promotion.mode}) or a stricter one, never a looser one. "
                    "auto: move the champion alias if the gate passes; approval: if it passes, ask a person "
                    "(Required Actions, the ML platform page or the REST API); dry_run: decide and record "
                    "only; disabled: record that nothing may be promoted."
                ),
            ),
            "search_budget": dag_support.optional_count_param(
                maximum=200,
                title="Candidates to train",
                description=(
                    "How many candidate models to fit in parallel (the configured one first); "
                    f"empty = the config's {budget}."
                ),
            ),
            "window_days": dag_support.optional_count_param(
                maximum=730,
                title="Training window (days)",
                description=(
                    "Days of labelled data up to the interval; "
                    f"empty = the config's {use_case.training.window_days}."
                ),
            ),
            "accept_stale_challenger": Param(
                False,
                type="boolean",
                title="Judge a stale challenger",
                description=(
                    "A challenger whose data window ends before the champion's is refused (it learnt an older "
                    "world); tick to judge it anyway. Recorded in the promotion ledger."
                ),
            ),
            "reason": Param(
                "",
                type="string",
                maxLength=500,
                title="Why this run",
                description="Recorded on the MLflow run.",
            ),
        },
    ) as dag:

        @task(task_id="prepare_training_set", retries=2)
        def prepare_training_set(**context) -> results.TrainingSetManifest:
            from mlops.core.config import PromotionModeRefused, get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.model.training_set import prepare_training_set as prepare

            with dag_support.fails_for_good(PromotionModeRefused):  # before any work, never retried
                get_use_case(name).promotion.run_mode(context["params"].get("promotion_mode"))
            day = dag_support.resolve_interval(context)  # a day that is not a date fails here, never retried
            window = context["params"].get("window_days")
            return prepare(
                get_use_case(name),
                day,
                get_lake(),
                get_feature_store(),
                context["run_id"],
                window_days=window,
            )

        @task(task_id="plan_candidates", retries=2)
        def plan_candidates(manifest: results.TrainingSetManifest, **context) -> list[dict]:
            from mlops.core.config import get_use_case
            from mlops.model.search import plan_candidates as plan

            params = context["params"]
            return plan(
                get_use_case(name), manifest, airflow_run_id=context["run_id"],
                overrides=params.get("hyperparameters") or {}, budget=params.get("search_budget"),
            )  # fmt: skip

        @task(task_id="train_candidate", retries=1, map_index_template="{{ candidate_name }}")
        def train_candidate(
            candidate: dict, manifest: results.TrainingSetManifest, **context
        ) -> results.CandidateResult:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.search import train_candidate as fit

            get_current_context()["candidate_name"] = candidate["name"]  # names the mapped task in the UI
            return fit(get_use_case(name), manifest, get_lake(), candidate, airflow_run_id=context["run_id"])

        @task(task_id="select_candidate", retries=0, trigger_rule=TriggerRule.ALL_DONE)
        def select_candidate(fitted: list[results.CandidateResult]) -> results.CandidateResult:
            # Runs when some candidates failed too: the best of the rest goes on; none left fails.
            from mlops.core.config import get_use_case
            from mlops.model.search import select_best

            return select_best(get_use_case(name), [r for r in fitted if r])

        @task(task_id="train_model", retries=1)
        def train_model(
            manifest: results.TrainingSetManifest, best: results.CandidateResult, **context
        ) -> results.TrainedModel:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.registration import train_and_register

            params = context["params"]
            return train_and_register(
                get_use_case(name),
                manifest,
                get_lake(),
                hyperparameters=best["hyperparameters"],
                estimator=best["estimator"],
                parent_run_id=best["parent_run_id"],
                dag_id=context["dag"].dag_id,
                airflow_run_id=context["run_id"],
                reason=params.get("reason") or (context["dag_run"].conf or {}).get("reason"),
            )

        @task(task_id="evaluate_and_promote", retries=1, outlets=[champion_asset(name)])
        def evaluate_and_promote(
            trained: results.TrainedModel, manifest: results.TrainingSetManifest, **context
        ) -> results.PromotionRecord:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.gate import evaluate_and_promote as gate

            entry = gate(
                get_use_case(name),
                trained,
                manifest,
                get_lake(),
                mode=context["params"].get("promotion_mode"),
                dag_id=context["dag"].dag_id,
                airflow_run_id=context["run_id"],
                triggered_by=dag_support.run_cause(context),
                accept_stale=bool(context["params"].get("accept_stale_challenger")),
            )
            context["outlet_events"][champion_asset(name)].extra = {
                "version": entry["version"],
                "outcome": entry["outcome"],
            }
            return entry

        @task.short_circuit(task_id="needs_approval", retries=0)
        def needs_approval(entry: results.PromotionRecord) -> bool:
            return entry["outcome"] == "awaiting_approval"

        @task(task_id="apply_approval", retries=1, outlets=[champion_asset(name)])
        def apply_approval(
            entry: results.PromotionRecord, response: dict, **context
        ) -> results.PromotionRecord:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.approval import apply_approval as act

            done = act(
                get_use_case(name),
                entry,
                response,
                get_lake(),
                dag_id=context["dag"].dag_id,
                airflow_run_id=context["run_id"],
            )
            context["outlet_events"][champion_asset(name)].extra = {
                "version": done["version"],
                "outcome": done["outcome"],
            }
            return done

        manifest = prepare_training_set()
        fitted = train_candidate.partial(manifest=manifest).expand(candidate=plan_candidates(manifest))
        gate = evaluate_and_promote(train_model(manifest, select_candidate(fitted)), manifest)
        approval = approval_task(use_case, gate_task_id="evaluate_and_promote")
        needs_approval(gate) >> approval
        apply_approval(gate, approval.output)
    return dag


PIPELINE.register(globals(), build)
