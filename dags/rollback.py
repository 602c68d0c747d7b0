"""Rollback per use case: make a named earlier version the champion again (one alias switch).

One DAG per use case, id `<name>_rollback`, manual only. Logic in `mlops.model.registry.rollback`.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import champion_asset


def build(use_case):
    name = use_case.name
    with DAG(
        dag_id=use_case.dag_id("rollback"),
        description=f"Roll the {name} champion back to the previous champion",
        schedule=None,
        start_date=dag_support.start_date(use_case),
        catchup=False,
        max_active_runs=1,
        tags=[dag_support.TAG, name, "rollback"],
        doc_md=(
            f"### {name}: rollback\n\nMoves `champion` of `{use_case.registered_model_name}` to the version you "
            "name (the replaced one keeps `previous_champion`) and records it, with your reason, in the promotion "
            "history. Explicit, not a toggle: running it twice leaves the same champion. Trigger by hand when a "
            "champion misbehaves; fails clearly if the version does not exist."
        ),
        default_args=dag_support.default_args(use_case, retries=0),
        params={
            "version": Param(type="string", pattern="^[0-9]+$", title="Version to restore", description="The model version that becomes the champion."),
            "reason": Param(type="string", minLength=3, maxLength=500, title="Why", description="Recorded in the promotion ledger."),
            "request_id": dag_support.request_id_param(),
        },
    ) as dag:

        @task(task_id="rollback_champion", outlets=[champion_asset(name)])
        def rollback_champion(**context) -> results.PromotionRecord:
            from airflow.sdk.exceptions import AirflowFailException

            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.registry import RollbackRefused, rollback

            params = context["params"]
            try:
                return rollback(
                    get_use_case(name),
                    get_lake(),
                    version=str(params["version"]),
                    reason=str(params["reason"]),
                    dag_id=context["dag"].dag_id,
                    airflow_run_id=context["run_id"],
                )
            except RollbackRefused as exc:
                raise AirflowFailException(str(exc)) from None

        rollback_champion()
    return dag


dag_support.register_dags(globals(), "rollback", build)
