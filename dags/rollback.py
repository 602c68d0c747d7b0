"""Rollback per use case: make a named earlier version the champion again (one alias switch).

One DAG per use case, id `<name>_rollback`, manual only. Logic in `mlops.model.registry.rollback`.
"""

from __future__ import annotations

from airflow.sdk import Param, task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import champion_asset

PIPELINE = dag_support.Pipeline(
    kind="rollback",
    description="Roll the {name} champion back to the previous champion",
    doc=(
        "### {name}: rollback\n\nMoves `champion` of `{model}` to the version you "
        "name (the replaced one keeps `previous_champion`) and records it, with your reason, in the "
        "promotion history. Explicit, not a toggle: running it twice leaves the same champion. Trigger by "
        "hand when a champion misbehaves. Only an earlier champion can be restored (a version the gate, a "
        "reviewer or a rollback made champion before), and only while today's features can feed it (its "
        "feature version); anything else fails at once with the reason, and nothing moves."
    ),
)


def build(use_case):
    name = use_case.name
    with PIPELINE.dag(
        use_case,
        schedule=None,
        params={
            "version": Param(
                type="string",
                pattern="^[0-9]+$",
                title="Version to restore",
                description="An earlier champion's version; it becomes the champion again.",
            ),
            "reason": Param(
                type="string",
                minLength=3,
                maxLength=500,
                title="Why",
                description="Recorded in the promotion ledger.",
            ),
        },
        retries=0,
    ) as dag:

        @task(task_id="rollback_champion", outlets=[champion_asset(name)])
        def rollback_champion(**context) -> results.PromotionRecord:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.model.registry import RollbackRefused, rollback

            params = context["params"]
            with dag_support.fails_for_good(RollbackRefused):
                return rollback(
                    get_use_case(name),
                    get_lake(),
                    version=str(params["version"]),
                    reason=str(params["reason"]),
                    dag_id=context["dag"].dag_id,
                    airflow_run_id=context["run_id"],
                    triggered_by=dag_support.run_cause(context),
                )

        rollback_champion()
    return dag


PIPELINE.register(globals(), build)
