"""Label feed per use case: labels delivered by their own system -> archive -> validate -> label table.

One DAG per use case that declares a `labels:` feed, id `<name>_labels`. Wiring only; the logic is
in `mlops.data.tasks`.
"""

from __future__ import annotations

from airflow.sdk import task

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import labels_asset

PIPELINE = dag_support.Pipeline(
    kind="labels",
    description="Archive, validate and store the labels delivered for {name}",
    doc="""
### {name}: label feed

**What it does.** For one day, reads the labels the upstream system delivered that day
({source}): which entity, the time of the event each label refers to (up to
{use_case.labels.max_delay_days} days earlier), and the label. Archives the file unmodified at
`raw/{name}.labels/<day>/`, validates it with `config/expectations/{name}.labels.json`, and adds
the labels to the label table, known from the end of that day. Training uses only labels known by
its own day; the drift DAG measures live performance on the predictions whose labels have arrived.

**Which day.** A scheduled run processes the day that has just closed (the run at D+1 00:00 UTC
archives D's delivery); manual and REST runs name it with `interval`, and without one (and no
logical date) process the latest closed day, yesterday UTC.

**A day on which no label arrived.** A delivery with a header and no rows is a valid day: it is
archived, zero labels are stored and the day's manifest written, with no alert; set
`labels.expectations.min_rows` (default {use_case.labels.expectations.min_rows}) above 0 to
quarantine such a day instead. A file that never lands is handled by `labels.source.on_missing`.

**When it fails.** `validate_labels` failing quarantines the delivery at
`quarantine/{name}.labels/<day>/` with the reason; nothing is added to the label table.
""",
)


def build(use_case):
    if use_case.labels is None:
        return None  # labels come in the batches: nothing to schedule
    name = use_case.name
    with PIPELINE.dag(
        use_case,
        doc_fields={"source": dag_support.describe_source(use_case.labels.source)},
        interval="Delivery day to process; empty = the run's data interval, else yesterday.",
        **dag_support.feed_runs(use_case),
    ) as dag:

        @task(task_id="extract_labels", retries=3)
        def extract_labels(**context) -> results.RawManifest:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.ingest import BatchMissing
            from mlops.data.tasks import extract_and_archive

            day = dag_support.resolve_interval(context)
            with dag_support.fails_for_good(BatchMissing):
                return extract_and_archive(
                    get_use_case(name), day, get_lake(), load_settings().landing_uri, feed="labels"
                )

        @task(task_id="validate_labels", retries=0)
        def validate_labels(manifest: results.RawManifest, **context) -> results.ValidationSummary:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.tasks import BatchRejected, validate_batch

            day = dag_support.resolve_interval(context)
            with dag_support.fails_for_good(BatchRejected):
                return validate_batch(
                    get_use_case(name), day, get_lake(), load_settings().config_dir, feed="labels"
                )

        @task(task_id="store_labels", outlets=[labels_asset(name)])
        def store_labels(validation: results.ValidationSummary, **context) -> results.LabelPartition:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.data.feature_store import get_feature_store
            from mlops.data.tasks import store_labels as store

            day = dag_support.resolve_interval(context)
            return store(get_use_case(name), day, get_lake(), get_feature_store())

        store_labels(validate_labels(extract_labels()))
    return dag


PIPELINE.register(globals(), build)
