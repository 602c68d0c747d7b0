"""Batch scoring per use case with the production model (`models:/<name>_model@champion`).

One DAG per use case, id `<name>_scoring`. Wiring only; the logic is in `mlops.model.scoring`.
"""

from __future__ import annotations

from airflow.sdk import Param, task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import features_asset, predictions_asset

PIPELINE = dag_support.Pipeline(
    kind="scoring",
    description="Score new {name} feature partitions with the champion",
    doc="""
### {name}: batch scoring

**What it does.** Loads `models:/{model}@champion` and scores feature partitions in chunks of
{use_case.scoring.chunk_rows} rows (memory stays flat), writing `predictions/{name}/<day>/predictions.parquet`
(entity, event time, {out}, model version, run id) and `_manifest.json` (rows, seconds, model
version, input feature statistics). Partitions fan out as mapped tasks, one per day.

**Triggers.** Each new `{name}_features` Asset event (the day is in its extra); the UI form or
REST API with `interval` (one day) or `intervals` (a list).

**When it fails.** "no 'champion' alias": train a model first (nothing was written).
""",
)


def build(use_case):
    name = use_case.name
    with PIPELINE.dag(
        use_case,
        schedule=[features_asset(name)],
        doc_fields={"out": "score" if use_case.task == "classification" else "prediction"},
        interval="One day to score; empty = the days in the triggering Asset events.",
        params={
            "intervals": Param(
                [],
                type="array",
                items={"type": "string", "format": "date"},
                title="Days to score",
                description="Several days at once (fan-out).",
            ),
        },
        max_active_runs=4,
    ) as dag:

        @task(task_id="partitions_to_score", retries=0)
        def partitions_to_score(**context) -> list[str]:
            return dag_support.days_to_score(context)

        @task(task_id="score_partition", retries=2, outlets=[predictions_asset(name)], map_index_template="{{ interval }}")
        def score_partition(interval: str, **context) -> results.ScoringManifest:
            import datetime as dt

            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.model.scoring import NoChampion
            from mlops.model.scoring import score_partition as score

            with dag_support.fails_for_good(NoChampion):
                manifest = score(get_use_case(name), dt.date.fromisoformat(interval), get_lake(), get_feature_store())
            manifest.pop("feature_stats")  # kept in the manifest file; XCom carries the summary only
            manifest["worker"] = dag_support.worker_name()
            return manifest

        score_partition.expand(interval=partitions_to_score())
    return dag


PIPELINE.register(globals(), build)
