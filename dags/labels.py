"""Label feed per use case: labels delivered by their own system -> archive -> validate -> label table.

One DAG per use case that declares a `labels:` feed, id `<name>_labels`. Wiring only; the logic is
in `mlops.data.tasks`.
"""

from __future__ import annotations

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException

from mlops.core import results
from mlops.orchestration import dag_support
from mlops.orchestration.assets import labels_asset

DOC = """
### {name}: label feed

**What it does.** For one day, reads the labels the upstream system delivered that day
({source}): which entity, the time of the event each label refers to (up to {max_delay} days
earlier), and the label. Archives the file unmodified at `raw/{name}.labels/<day>/`, validates it
with `config/expectations/{name}.labels.json`, and adds the labels to the label table, known from
the end of that day. Training uses only labels known by its own day; the drift DAG measures live
performance on the predictions whose labels have arrived.

**Which day.** A scheduled run processes the day that has just closed (the run at D+1 00:00 UTC
archives D's delivery); manual and REST runs name it with `interval`.

**When it fails.** `validate_labels` failing quarantines the delivery at
`quarantine/{name}.labels/<day>/` with the reason; nothing is added to the label table.
"""


def build(use_case):
    if use_case.labels is None:
        return None  # labels come in the batches: nothing to schedule
    name = use_case.name
    with DAG(
        dag_id=use_case.dag_id("labels"),
        description=f"Archive, validate and store the labels delivered for {name}",
        schedule=dag_support.day_timetable(use_case.schedules.data),
        start_date=dag_support.start_date(use_case),
        catchup=use_case.schedules.catchup,
        max_active_runs=4,
        tags=[dag_support.TAG, name, "labels"],
        doc_md=DOC.format(
            name=name,
            source=use_case.labels.source.uri or f"SQL via {use_case.labels.source.conn_id}",
            max_delay=use_case.labels.max_delay_days,
        ),
        default_args=dag_support.default_args(use_case),
        params={
            "interval": dag_support.interval_param("Delivery day to process; empty = the run's data interval."),
            "request_id": dag_support.request_id_param(),
        },
    ) as dag:

        @task(task_id="extract_labels", retries=3)
        def extract_labels(**context) -> results.RawManifest:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.ingest import BatchMissing
            from mlops.data.tasks import extract_and_archive

            day = dag_support.resolve_interval(context)
            try:
                return extract_and_archive(get_use_case(name), day, get_lake(), load_settings().landing_uri, feed="labels")
            except BatchMissing as exc:
                raise AirflowFailException(str(exc)) from None

        @task(task_id="validate_labels", retries=0)
        def validate_labels(manifest: results.RawManifest, **context) -> results.ValidationSummary:
            from mlops.core.config import get_use_case
            from mlops.core.lake import get_lake
            from mlops.core.settings import load_settings
            from mlops.data.tasks import BatchRejected, validate_batch

            day = dag_support.resolve_interval(context)
            try:
                return validate_batch(get_use_case(name), day, get_lake(), load_settings().config_dir, feed="labels")
            except BatchRejected as exc:
                raise AirflowFailException(str(exc)) from None

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


dag_support.register_dags(globals(), "labels", build)
