"""Daily drift monitoring per use case: Evidently report -> Slack alert -> guarded retrain.

One DAG per use case, id `<name>_drift`. Wiring only; the logic is in `mlops.monitoring` (drift, retrain) and `mlops.core.alerts`.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import TriggerRule, task

from mlops.core import results
from mlops.orchestration import dag_support

PIPELINE = dag_support.Pipeline(
    kind="drift",
    tag="monitoring",
    description="Daily drift check of the {name} model's inputs and outputs",
    doc="""
### {name}: drift monitoring

**What it does.** Compares the features scored in the last {use_case.drift.window_days} day(s)
and those of the online requests the model server answered on those days (and their scores)
with the feature data the current champion was trained on, using Evidently (data drift per
feature, prediction drift, and live performance where labels have arrived). Writes
`reports/{name}/<day>/drift_report.html` and `drift_summary.json`, logs both to MLflow with
drift metrics. On drift it posts one Slack alert and triggers `{name}_training` with the reason,
unless a training run is active, the {use_case.drift.cooldown_hours} h cooldown has not passed,
or this champion already triggered one.

**Which day.** A scheduled run checks the window ending with the day that has just closed
(the run at D+1 00:00 UTC checks D); a manual run names the day with `interval`. A run with no
logical date and no `interval` checks the latest closed day (yesterday, UTC) and logs it; the day
is in the task's result.

**Triggers.** Schedule `{use_case.drift.schedule}`; the UI form; the REST API.

**Before the first champion.** `check_drift` ends skipped with the reason in its log ("no
champion yet: train one from the training DAG"): nothing to compare is not a failure, and no
alert goes out. `send_alerts` still delivers alerts kept from earlier runs.

**When it fails.** "nothing was scored and no online request was served": run the scoring DAG for
the window's days first. Alerts that Slack did not accept stay in the outbox and go out on the
next run.
""",
)


def build(use_case):
    name = use_case.name
    with PIPELINE.dag(
        use_case,
        schedule=dag_support.day_timetable(use_case.drift.schedule),
        interval="Last day of the window to check; empty = the run's data interval, else yesterday.",
    ) as dag:

        @task(task_id="check_drift", retries=1)
        def check_drift(**context) -> results.DriftCheckResult:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.model.scoring import NoChampion
            from mlops.monitoring.drift import check_drift_and_alert

            day = dag_support.resolve_interval(context)
            with dag_support.skips_for(NoChampion):  # nothing to compare yet: not a failure
                return check_drift_and_alert(
                    get_use_case(name), day, get_lake(), get_feature_store(), airflow_run_id=context["run_id"]
                )

        @task(task_id="send_alerts", retries=0, trigger_rule=TriggerRule.ALL_DONE)
        def send_alerts() -> results.AlertDelivery:
            # Runs even if the check failed: alerts kept from earlier runs still go out.
            from mlops.core.alerts import deliver_failure_alerts, deliver_pending
            from mlops.core.lake import get_lake

            lake = get_lake()
            deliver_failure_alerts(lake)
            return deliver_pending(lake, name)

        @task.short_circuit(task_id="decide_retrain", retries=0)
        def decide_retrain(result: results.DriftCheckResult, **context) -> results.RetrainTrigger | bool:
            import datetime as dt

            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.monitoring.retrain import decide_and_record

            ti, training = context["ti"], use_case.dag_id("training")
            trigger = decide_and_record(
                get_lake(),
                get_use_case(name),
                result,
                drift_run_id=context["run_id"],
                active_training_runs=ti.get_dr_count(dag_id=training, states=["running", "queued"]),
                now=dt.datetime.now(dt.UTC),
                run_exists=lambda run_id: ti.get_dr_count(dag_id=training, run_ids=[run_id]) > 0,
            )
            return trigger or False

        result = check_drift()
        result >> send_alerts()
        decision = decide_retrain(result)
        decision >> TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=use_case.dag_id("training"),
            trigger_run_id="{{ ti.xcom_pull(task_ids='decide_retrain')['training_run_id'] }}",
            conf={
                "reason": "drift: {{ ti.xcom_pull(task_ids='decide_retrain')['reason'] }}",
                "interval": "{{ ti.xcom_pull(task_ids='decide_retrain')['day'] }}",
                dag_support.DRIFT_RUN_KEY: "{{ run_id }}",  # the ledger names the drift run that asked
                "window_days": use_case.drift.retrain_window_days,
            },
            skip_when_already_exists=True,
            wait_for_completion=False,
        )
    return dag


PIPELINE.register(globals(), build)
