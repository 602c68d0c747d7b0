"""Batch scoring per use case with the production model (`models:/<name>_model@champion`).

One DAG per use case, id `<name>_scoring`. Wiring only; the logic is in `mlops.model.scoring`.
"""

from __future__ import annotations

import logging

from airflow.sdk import Param, task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import champion_asset, features_asset, predictions_asset

log = logging.getLogger(__name__)

PIPELINE = dag_support.Pipeline(
    kind="scoring",
    description="Score new {name} feature partitions with the champion",
    doc="""
### {name}: batch scoring

**What it does.** Loads `models:/{model}@champion` and scores feature partitions in chunks of
{use_case.scoring.chunk_rows} rows (memory stays flat), writing `predictions/{name}/<day>/predictions.parquet`
(entity, event time, {out}, model version, run id) and `_manifest.json` (rows, seconds, model
version, input feature statistics). Partitions fan out as mapped tasks, one per day.

**Which days.** The days the run names (`interval`, `intervals`, the days in its feature Asset
events, or its logical date), except those already scored with this champion and these features
(scoring them again would write the same bytes: the task says so and skips), plus catch-up:
the committed feature days without predictions among the {use_case.catch_up_days} days up to
the run's last day (the days the drift DAG reads), e.g. the days that arrived before the first
champion existed. Older days are scored by naming them. A run that names no day catches up to
the latest closed day (yesterday, UTC).

**Triggers.** Each new `{name}_features` Asset event (the day is in its extra); each
`{name}_champion` event (a promotion or a rollback: the catch-up scores what the first champion
could not); the UI form or REST API with `interval` (one day) or `intervals` (a list).

**Nothing to do is not a failure.** Before the first champion exists, or when every day is
already scored, the run ends with its tasks skipped and the reason in the `partitions_to_score`
log ("no champion yet: train one from the training DAG"); no alert goes out. A day that is not a
date is refused when the run is created (400 from the REST API).

**When it fails.** A named day with no committed features: run the data DAG for it first.
""",
)


def build(use_case):
    name = use_case.name
    with PIPELINE.dag(
        use_case,
        schedule=features_asset(name) | champion_asset(name),
        doc_fields={"out": "score" if use_case.task == "classification" else "prediction"},
        interval="One day to score; empty = the days of the Asset events that started it, else yesterday.",
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

        @task(task_id="partitions_to_score", retries=2)
        def partitions_to_score(**context) -> list[str]:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.model.scoring import NoChampion, plan_scoring

            asked = dag_support.days_to_score(context)
            with dag_support.skips_for(NoChampion):
                plan = plan_scoring(
                    get_use_case(name), asked.named, asked.up_to, get_lake(), get_feature_store()
                )
            if not plan.days:
                dag_support.skip_run(f"nothing to score: {plan.describe()}")
            log.info("%s", plan.describe())
            return [day.isoformat() for day in plan.days]

        @task(
            task_id="score_partition",
            retries=2,
            outlets=[predictions_asset(name)],
            map_index_template="{{ interval }}",
        )
        def score_partition(interval: str, **context) -> results.ScoringManifest:
            import datetime as dt

            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.model.scoring import NoChampion
            from mlops.model.scoring import score_partition as score

            day = dt.date.fromisoformat(interval)
            with dag_support.skips_for(NoChampion):  # the champion went away since the plan
                manifest = score(get_use_case(name), day, get_lake(), get_feature_store())
            manifest.pop("feature_stats")  # kept in the manifest file; XCom carries the summary only
            manifest["worker"] = dag_support.worker_name()
            return manifest

        score_partition.expand(interval=partitions_to_score())
    return dag


PIPELINE.register(globals(), build)
