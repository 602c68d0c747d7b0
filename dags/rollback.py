"""Rollback per use case: make the previous champion the champion again (one alias switch).

One DAG per use case, id `<name>_rollback`, manual only. Logic in `mlops.model.registry.rollback`.
"""

from __future__ import annotations

from airflow.sdk import DAG, task

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
            f"### {name}: rollback\n\nMoves `champion` of `{use_case.registered_model_name}` back to the version "
            "holding `previous_champion` (and swaps them), and records it in the promotion history. "
            "Trigger by hand when a new champion misbehaves; fails clearly if there is nothing to roll back to."
        ),
        default_args=dag_support.default_args(use_case, retries=0),
        params={"request_id": dag_support.request_id_param()},
    ) as dag:

        @task(task_id="rollback_champion", outlets=[champion_asset(name)])
        def rollback_champion(**context) -> results.PromotionRecord:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.registry import rollback

            return rollback(get_use_case(name), get_lake(), dag_id=context["dag"].dag_id, airflow_run_id=context["run_id"])

        rollback_champion()
    return dag


dag_support.register_dags(globals(), "rollback", build)
