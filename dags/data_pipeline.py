"""Data pipeline per use case: extract -> validate (Great Expectations) -> materialize features.

Validation is split: ``extract_batch`` archives the day and cuts a large one into partitions,
``check_partition`` (one mapped task each) parses and checks one and builds its features,
``validate_batch`` combines the checks into the day's verdict, ``materialize_features`` commits.

One DAG per `config/use_cases/<name>.yaml`, id `<name>_data`. This file only wires tasks; the
logic is in `mlops.data.tasks`.
"""

from __future__ import annotations

from airflow.sdk import task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import features_asset

PIPELINE = dag_support.Pipeline(
    kind="data",
    description="Extract, validate and materialize features for {name}",
    doc="""
### {name}: data pipeline

**What it does.** For one day (the run's data interval, or the `interval` param), reads the
upstream batch ({source}), archives it unmodified at `raw/{name}/<day>/` with its SHA-256,
validates it with the Great Expectations suite `config/expectations/{name}.json`, and writes the
day's feature and label rows to the feature store.

**Partitions.** A delivery larger than `source.partition_mb` is checked in partitions, one
`check_partition` task each (spread over the workers), which also builds the partition's
features; `validate_batch` combines the checks into one verdict and one report for the day, and
`materialize_features` commits the day's features at once.

**Which day.** A scheduled run processes the day that has just closed: the run for day D has
the data interval D 00:00 to D+1 00:00 UTC and starts at D+1 00:00. Catchup and
`airflow backfill` create one run per day. A manual or REST run names its day with the
`interval` param; without it, it processes the last complete day.

**Triggers.** Schedule `{use_case.schedules.data}`; the UI trigger form;
`POST /api/v2/dags/{name}_data/dagRuns` with `{{"conf": {{"interval": "YYYY-MM-DD"}}}}`.

**Writes.** `raw/`, `validation/`, on failure `quarantine/{name}/<day>/` (the batch, the GX
result and Data Docs, `reason.json`); the `{name}_features` Asset, which starts scoring.

**When it fails.** `validate_batch` failing means the batch broke an `error` expectation: the
log and the Slack alert list each one with counts; the batch is in quarantine, nothing
downstream ran. Fix upstream and re-deliver, then clear the run. `extract_batch` failing with
"no upstream batch" means it has not landed yet.
""",
)


def build(use_case):
    name = use_case.name
    asset = features_asset(name)
    with PIPELINE.dag(
        use_case,
        doc_fields={"source": dag_support.describe_source(use_case.source)},
        interval="Day to process; empty = the run's data interval.",
        **dag_support.feed_runs(use_case),
    ) as dag:
        if use_case.source.on_missing == "wait":

            @task.sensor(
                task_id="wait_for_batch",
                poke_interval=60,
                timeout=use_case.source.wait_timeout_minutes * 60,
                mode="reschedule",
            )
            def wait_for_batch(**context) -> bool:
                from mlops.core.config import get_use_case
                from mlops.core.settings import load_settings
                from mlops.data.ingest import batch_available

                day = dag_support.resolve_interval(context)
                return batch_available(get_use_case(name), day, load_settings().landing_uri)

            waiter = wait_for_batch()
        else:
            waiter = None

        @task(task_id="extract_batch", retries=3)
        def extract_batch(**context) -> list[results.BatchPart]:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.ingest import BatchMissing
            from mlops.data.tasks import extract_and_split

            day = dag_support.resolve_interval(context)
            with dag_support.fails_for_good(BatchMissing):
                return extract_and_split(get_use_case(name), day, get_lake(), load_settings().landing_uri)

        @task(task_id="check_partition", retries=1)
        def check_partition(part: results.BatchPart, **context) -> results.PartCheck:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.feature_store import get_feature_store
            from mlops.data.tasks import check_partition as check

            day = dag_support.resolve_interval(context)
            return check(
                get_use_case(name),
                day,
                get_lake(),
                load_settings().config_dir,
                part,
                store=get_feature_store(),
            )

        @task(task_id="validate_batch", retries=0)
        def validate_batch(checks: list[results.PartCheck], **context) -> results.ValidationSummary:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.tasks import BatchRejected
            from mlops.data.tasks import validate_batch as run_gate

            day = dag_support.resolve_interval(context)
            parts = [checks[i] for i in range(len(checks))]  # indexed: iterating probes one past the end
            with dag_support.fails_for_good(BatchRejected):
                return run_gate(get_use_case(name), day, get_lake(), load_settings().config_dir, checks=parts)

        @task(task_id="materialize_features", outlets=[asset])
        def materialize_features(
            validation: results.ValidationSummary, **context
        ) -> results.FeaturePartition:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.data.tasks import materialize_features as materialize

            day = dag_support.resolve_interval(context)
            manifest = materialize(get_use_case(name), day, get_lake(), get_feature_store())
            context["outlet_events"][asset].extra = {
                "interval": day.isoformat(),
                "rows": manifest["rows"],
                "content_hash": manifest["content_hash"],
            }
            return manifest

        parts = extract_batch()
        if waiter is not None:
            waiter >> parts
        checks = check_partition.expand(part=parts)
        materialize_features(validate_batch(checks))
    return dag


PIPELINE.register(globals(), build)
