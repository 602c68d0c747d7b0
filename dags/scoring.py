"""Batch scoring per use case with the production model (`models:/<name>_model@champion`).

One DAG per use case, id `<name>_scoring`. Wiring only; the logic is in `mlops.model.scoring`.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import features_asset, predictions_asset

DOC = """
### {name}: batch scoring

**What it does.** Loads `models:/{model}@champion` and scores feature partitions in chunks of
{chunk} rows (memory stays flat), writing `predictions/{name}/<day>/predictions.parquet`
(entity, event time, {out}, model version, run id) and `_manifest.json` (rows, seconds, model
version, input feature statistics). Partitions fan out as mapped tasks, one per day.

**Triggers.** Each new `{name}_features` Asset event (the day is in its extra); the UI form or
REST API with `interval` (one day) or `intervals` (a list).

**When it fails.** "no 'champion' alias": train a model first (nothing was written).
"""


def build(use_case):
    name = use_case.name
    with DAG(
        dag_id=use_case.dag_id("scoring"),
        description=f"Score new {name} feature partitions with the champion",
        schedule=[features_asset(name)],
        start_date=dag_support.start_date(use_case),
        catchup=False,
        max_active_runs=4,
        tags=[dag_support.TAG, name, "scoring"],
        doc_md=DOC.format(
            name=name,
            model=use_case.registered_model_name,
            chunk=use_case.scoring.chunk_rows,
            out="score" if use_case.task == "classification" else "prediction",
        ),
        default_args=dag_support.default_args(use_case),
        params={
            "interval": dag_support.interval_param("One day to score; empty = the days in the triggering Asset events."),
            "intervals": Param([], type="array", items={"type": "string", "format": "date"}, title="Days to score", description="Several days at once (fan-out)."),
            "request_id": dag_support.request_id_param(),
        },
    ) as dag:

        @task(task_id="partitions_to_score", retries=0)
        def partitions_to_score(**context) -> list[str]:
            return dag_support.days_to_score(context)

        @task(task_id="score_partition", retries=2, outlets=[predictions_asset(name)], map_index_template="{{ interval }}")
        def score_partition(interval: str, **context) -> results.ScoringManifest:
            import datetime as dt

            from airflow.sdk.exceptions import AirflowFailException

            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.model.scoring import NoChampion
            from mlops.model.scoring import score_partition as score

            try:
                manifest = score(get_use_case(name), dt.date.fromisoformat(interval), get_lake(), get_feature_store())
            except NoChampion as exc:
                raise AirflowFailException(str(exc)) from None
            manifest.pop("feature_stats")  # kept in the manifest file; XCom carries the summary only
            manifest["worker"] = dag_support.worker_name()
            return manifest

        score_partition.expand(interval=partitions_to_score())
    return dag


dag_support.register_dags(globals(), "scoring", build)
