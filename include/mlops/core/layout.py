"""The lake layout: every path in the lake is built here, and nowhere else.

All paths are relative to the lake root (``MLOPS_LAKE_URI``) and keyed by use case and day, so
a task that re-runs writes the same paths again. ``docs/architecture.md`` has the table of which
task writes and which reads each one.

==================================================  =========================================
path                                                what it holds
==================================================  =========================================
``raw/<uc>/<day>/<sha256>.<ext>``                   each delivery, bytes as received, named by hash
``raw/<uc>/<day>/_manifest.json``                   the current delivery (hash, size, source, time)
``raw/<uc>.labels/<day>/...``                       the label feed's deliveries, the same way
``validation/<uc>/<day>/``                          GX result, Data Docs, the gate's summary
``quarantine/<uc>/<day>/``                          a rejected batch with its result and reason
``staging/<uc>/<day>/<sha256>/<n>.<kind>.arrow``    a checked partition's parsed rows, until committed
``features/<uc>/<day>/<sha256>.parquet``            feature rows (Parquet feature store), named by hash
``labels/<uc>/<day>/<sha256>.parquet``              label rows with their arrival time, named by hash
``features/<uc>/_manifests/<day>.json``             a day's commit: rows, content hash, the files
``labels/<uc>/_manifests/<day>.json``               a committed label delivery (label feed)
``features/<uc>/_locks/<day>.lock``                 taken by whoever commits the day
``{features,labels}/<uc>/<day>.parquet``            the earlier layout's files (read, replaced)
``training_sets/<uc>/<day>/<run key>/``             train / validation / holdout + lineage
``predictions/<uc>/<day>/``                         scores of the day and their manifest
``serving/<uc>/<day>/<batch>.parquet``              online requests received that day, one batch
``serving/<uc>/<day>/_manifests/<batch>.json``      a committed batch of online requests
``reports/<uc>/<day>/``                             drift report, summary, retrain decision
``registry/<uc>/promotions/<stamp>_v<n>.json``      one record per promotion decision
``registry/<uc>/evidence/<stamp>_v<n>.json``        a decision's evidence (the ledger record's stem)
``registry/<uc>/evidence/<stamp>_v<n>.html``        the same evidence as a page for its reviewer
``registry/<uc>/pending/<run>_v<n>.json``           a decision whose aliases may be moving
``alerts/<scope>/{outbox,sent}/<id>.json``          alerts waiting for Slack, and delivered
``alerts/<scope>/claims/<id>.<n>.json``            a sender's claim on an alert, taken before posting
``state/<uc>/retrain_guard.json``                   the last drift-triggered retrain
==================================================  =========================================
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

MANIFEST = "_manifest.json"
AlertBox = Literal["outbox", "sent"]
FAILURE_SCOPE_ROOT = "_failures"


def _day(day: dt.date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()


# Raw archive (extract_batch) --------------------------------------------------------------------
def raw_root(use_case: str) -> str:
    return f"raw/{use_case}"


def raw_dir(use_case: str, day: dt.date | str) -> str:
    return f"{raw_root(use_case)}/{_day(day)}"


def raw_object(use_case: str, day: dt.date | str, sha256: str, fmt: str) -> str:
    """A delivery's bytes, named by their SHA-256: written once, never overwritten."""
    return f"{raw_dir(use_case, day)}/{sha256}.{fmt}"


def raw_manifest(use_case: str, day: dt.date | str) -> str:
    """The only mutable file of the archive: which delivery is current, and the earlier ones."""
    return f"{raw_dir(use_case, day)}/{MANIFEST}"


# Validation gate (validate_batch) ---------------------------------------------------------------
def validation_root(use_case: str) -> str:
    return f"validation/{use_case}"


def validation_dir(use_case: str, day: dt.date | str) -> str:
    return f"{validation_root(use_case)}/{_day(day)}"


def validation_summary(use_case: str, day: dt.date | str) -> str:
    return f"{validation_dir(use_case, day)}/summary.json"


def validation_result(use_case: str, day: dt.date | str) -> str:
    return f"{validation_dir(use_case, day)}/validation_result.json"


def validation_docs(use_case: str, day: dt.date | str) -> str:
    return f"{validation_dir(use_case, day)}/data_docs.html"


def validation_part(use_case: str, day: dt.date | str, sha256: str, index: int) -> str:
    """One partition's check (its GX result), for the delivery with this content hash."""
    return f"{validation_dir(use_case, day)}/parts/{sha256}/{index:05d}.json"


StagedKind = Literal["keys", "features", "labels", "rows"]


def staged_part(use_case: str, day: dt.date | str, sha256: str, index: int, kind: StagedKind) -> str:
    """What a partition's check leaves for the tasks after it (Arrow IPC), so nothing parses the
    CSV twice: its ``keys`` (the day's key-uniqueness check), the ``features`` and ``labels`` it
    built (materialize_features commits them), or a label delivery's parsed ``rows``. Staging
    only: removed once the day is committed or quarantined."""
    return f"staging/{use_case}/{_day(day)}/{sha256}/{index:05d}.{kind}.arrow"


def parsed_parts_dir(use_case: str, day: dt.date | str) -> str:
    return f"staging/{use_case}/{_day(day)}"


def quarantine_root(use_case: str) -> str:
    return f"quarantine/{use_case}"


def quarantine_dir(use_case: str, day: dt.date | str) -> str:
    return f"{quarantine_root(use_case)}/{_day(day)}"


def quarantine_batch(use_case: str, day: dt.date | str, fmt: str) -> str:
    return f"{quarantine_dir(use_case, day)}/batch.{fmt}"


def quarantine_result(use_case: str, day: dt.date | str) -> str:
    return f"{quarantine_dir(use_case, day)}/validation_result.json"


def quarantine_docs(use_case: str, day: dt.date | str) -> str:
    return f"{quarantine_dir(use_case, day)}/data_docs.html"


def quarantine_reason(use_case: str, day: dt.date | str) -> str:
    """Written last: its presence marks a complete quarantine."""
    return f"{quarantine_dir(use_case, day)}/reason.json"


# Feature store, Parquet backend (materialize_features) -----------------------------------------
FeatureKind = Literal["features", "labels"]


def store_partition(kind: FeatureKind, use_case: str, day: dt.date | str) -> str:
    """The earlier layout's one file per day and kind, read when a manifest names no files (a day
    committed before manifests did); a commit of the day replaces it with a ``store_file``."""
    return f"{kind}/{use_case}/{_day(day)}.parquet"


def store_day_dir(kind: FeatureKind, use_case: str, day: dt.date | str) -> str:
    return f"{kind}/{use_case}/{_day(day)}"


def store_file(kind: FeatureKind, use_case: str, day: dt.date | str, sha256: str) -> str:
    """A day's feature or label rows, named by the SHA-256 of the file's bytes: a name no other
    content takes, so a commit never overwrites what a reader of the previous commit reads."""
    return f"{store_day_dir(kind, use_case, day)}/{sha256}.parquet"


def store_file_in_progress(kind: FeatureKind, use_case: str, day: dt.date | str, token: str) -> str:
    """A file being written, before its hash names it (hidden: no listing shows it)."""
    return f"{store_day_dir(kind, use_case, day)}/.{token}.parquet"


def store_lock(use_case: str, day: dt.date | str) -> str:
    """Held while a day's manifest is read and replaced (features, and labels of either feed)."""
    return f"features/{use_case}/_locks/{_day(day)}.lock"


def feature_manifests_dir(use_case: str) -> str:
    return f"features/{use_case}/_manifests"


def feature_manifest(use_case: str, day: dt.date | str) -> str:
    """Written last, once: a day is committed once its manifest exists, and is what it names."""
    return f"{feature_manifests_dir(use_case)}/{_day(day)}.json"


def label_manifest(use_case: str, day: dt.date | str) -> str:
    """Written last: the labels delivered on ``day`` are committed once it exists."""
    return f"labels/{use_case}/_manifests/{_day(day)}.json"


# Training sets (prepare_training_set) -----------------------------------------------------------
def training_set_dir(use_case: str, day: dt.date | str, run_key: str) -> str:
    return f"training_sets/{use_case}/{_day(day)}/{run_key}"


def training_split(use_case: str, day: dt.date | str, run_key: str, split: str) -> str:
    return f"{training_set_dir(use_case, day, run_key)}/{split}.parquet"


def training_set_manifest(use_case: str, day: dt.date | str, run_key: str) -> str:
    return f"{training_set_dir(use_case, day, run_key)}/{MANIFEST}"


# Predictions (score_partition) ------------------------------------------------------------------
def predictions_root(use_case: str) -> str:
    return f"predictions/{use_case}"


def predictions_dir(use_case: str, day: dt.date | str) -> str:
    return f"{predictions_root(use_case)}/{_day(day)}"


def predictions_file(use_case: str, day: dt.date | str) -> str:
    return f"{predictions_dir(use_case, day)}/predictions.parquet"


def predictions_manifest(use_case: str, day: dt.date | str) -> str:
    return f"{predictions_dir(use_case, day)}/{MANIFEST}"


# Online requests (the model server's request log) -----------------------------------------------
def serving_root(use_case: str) -> str:
    return f"serving/{use_case}"


def serving_dir(use_case: str, day: dt.date | str) -> str:
    """The online requests received on ``day`` (UTC), in batches."""
    return f"{serving_root(use_case)}/{_day(day)}"


def serving_batch(use_case: str, day: dt.date | str, batch: str) -> str:
    """One flush of the request log: written once under a name no other flush uses."""
    return f"{serving_dir(use_case, day)}/{batch}.parquet"


def serving_manifests_dir(use_case: str, day: dt.date | str) -> str:
    return f"{serving_dir(use_case, day)}/_manifests"


def serving_manifest(use_case: str, day: dt.date | str, batch: str) -> str:
    """Written last: a batch of online requests is committed once its manifest exists."""
    return f"{serving_manifests_dir(use_case, day)}/{batch}.json"


# Monitoring (check_drift, decide_retrain) -------------------------------------------------------
def reports_root(use_case: str) -> str:
    return f"reports/{use_case}"


def reports_dir(use_case: str, day: dt.date | str) -> str:
    return f"{reports_root(use_case)}/{_day(day)}"


def drift_report(use_case: str, day: dt.date | str) -> str:
    return f"{reports_dir(use_case, day)}/drift_report.html"


def drift_summary(use_case: str, day: dt.date | str) -> str:
    return f"{reports_dir(use_case, day)}/drift_summary.json"


def retrain_decision(use_case: str, day: dt.date | str) -> str:
    return f"{reports_dir(use_case, day)}/retrain_decision.json"


def retrain_guard_state(use_case: str) -> str:
    return f"state/{use_case}/retrain_guard.json"


# Registry (evaluate_and_promote, rollback_champion) ---------------------------------------------
def promotions_dir(use_case: str) -> str:
    return f"registry/{use_case}/promotions"


def promotion_intent(use_case: str, airflow_run_id: str, version: str) -> str:
    """A decision taken but not yet applied: written before the aliases move, removed once recorded."""
    run = "".join(c if c.isalnum() or c in "-_." else "_" for c in airflow_run_id)
    return f"registry/{use_case}/pending/{run}_v{version}.json"


def _decision_stem(decided_at: str, version: str) -> str:
    """A decision's file name without extension: sorts by decision time, no ``:`` in it."""
    stamp = decided_at.replace(":", "").replace("-", "")
    return f"{stamp}_v{version}"


def promotion_record(use_case: str, decided_at: str, version: str) -> str:
    return f"{promotions_dir(use_case)}/{_decision_stem(decided_at, version)}.json"


def evidence_dir(use_case: str) -> str:
    return f"registry/{use_case}/evidence"


def evidence_record(use_case: str, decided_at: str, version: str) -> str:
    """The evidence of the decision recorded at ``promotion_record`` (same stem): its data."""
    return f"{evidence_dir(use_case)}/{_decision_stem(decided_at, version)}.json"


def evidence_page(use_case: str, decided_at: str, version: str) -> str:
    """The same evidence as a standalone HTML page (what a reviewer reads)."""
    return f"{evidence_dir(use_case)}/{_decision_stem(decided_at, version)}.html"


# Alerts (send_alerts, every task's failure callback) --------------------------------------------
def failure_scope(dag_id: str) -> str:
    """The alert scope of task-failure alerts of one DAG."""
    return f"{FAILURE_SCOPE_ROOT}/{dag_id}"


def failure_scopes_root() -> str:
    return f"alerts/{FAILURE_SCOPE_ROOT}"


def alert_box(scope: str, box: AlertBox) -> str:
    return f"alerts/{scope}/{box}"


def alert_record(scope: str, box: AlertBox, alert_id: str) -> str:
    name = alert_id if alert_id.endswith(".json") else f"{alert_id}.json"
    return f"{alert_box(scope, box)}/{name}"


def alert_claims(scope: str) -> str:
    return f"alerts/{scope}/claims"


def alert_claim(scope: str, alert_id: str, attempt: int) -> str:
    """The claim a sender takes (created exclusively) before posting attempt ``attempt`` of an alert."""
    return f"{alert_claims(scope)}/{alert_id.removesuffix('.json')}.{attempt}.json"
