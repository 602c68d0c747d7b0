"""The smoke run of ``python -m mlops check``: the real DAGs on a sample, in a scratch home.

A few sample days land in a scratch landing area (:mod:`mlops.dev.samples`), then the use case's
own DAGs run on them with ``dag.test()``: data (and labels) for each day, training with the gate
on the sample, scoring and drift on the last day. It runs in a child process,
``python -m mlops check --smoke-child <use case>``, whose environment points everything at the
scratch folder (lake, landing area, MLflow store, SQLite Airflow database) and carries none of
the caller's Airflow, MLflow or platform variables (so no Slack, no connection, no production
store): Airflow reads its settings when it is imported, and the caller's process stays as it was.

The child writes ``smoke.json`` (one record per step, with the reason of a failure) and, when a
model was trained, ``dry_run.parquet``: the sample holdout with the challenger's and the
baseline's scores, which the caller compares with the production champion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from mlops.dev.samples import SAMPLES_DIR, batch_for, labels_for

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

SMOKE_RESULT = "smoke.json"
DRY_RUN_FRAME = "dry_run.parquet"
CHALLENGER_SCORE = "__challenger_score__"
BASELINE_SCORE = "__baseline_score__"
ROWS = 400  # rows per sample day
# The sample days end here (or at the use case's start plus the days needed, or yesterday if
# that is earlier): fixed days give the same sample on every run of the check.
ANCHOR_DAY = dt.date(2026, 6, 30)
# Variables of the caller the child never sees: it gets its own of each.
ISOLATED_PREFIXES = ("AIRFLOW", "MLOPS_", "MLFLOW_")
CHECK_REASON = "use-case check (smoke run)"

StepStatus = Literal["ok", "error", "skipped"]


class SmokeStep(TypedDict):
    check: str  # smoke:dags, smoke:data, smoke:labels, smoke:training, smoke:scoring, smoke:drift
    status: StepStatus
    message: str
    seconds: float


class SmokeResult(TypedDict):
    use_case: str
    days: list[str]
    steps: list[SmokeStep]
    version: str | None  # the model version the smoke training registered (scratch registry)
    dry_run_frame: str | None  # path of the holdout with both scores, for the dry-run gate


# -- the caller's side -------------------------------------------------------------------------------


def _files_source(source: dict[str, Any], stream: str) -> dict[str, Any]:
    """A files source landing at ``{landing}/<stream>/<day>.<format>``: a SQL query, an object
    store path or a sensor that waits have no place in a scratch home."""
    fmt = source.get("format", "csv")
    kept = {k: v for k, v in source.items() if k in ("format", "partition_mb")}
    return kept | {"kind": "files", "uri": f"{{landing}}/{stream}/{{interval}}.{fmt}", "on_missing": "fail"}


def scratch_config(use_case_file: Path, config_dir: Path, scratch: Path) -> Path:
    """A config folder holding only this use case (its feeds landing in the scratch landing area),
    the suites derived from it, and its checked-in samples."""
    import yaml

    from mlops.core.config import load_use_case_file
    from mlops.data.validation import derive_suite, suite_path

    raw = yaml.safe_load(use_case_file.read_text())
    name = use_case_file.stem
    config = scratch / "config"
    (config / "use_cases").mkdir(parents=True, exist_ok=True)
    raw["source"] = _files_source(raw.get("source") or {}, name)
    if raw.get("labels"):
        raw["labels"]["source"] = _files_source(raw["labels"].get("source") or {}, f"{name}.labels")
    path = config / "use_cases" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    use_case = load_use_case_file(path)
    for feed in use_case.feeds:
        suite = suite_path(config, feed.stream)
        suite.parent.mkdir(parents=True, exist_ok=True)
        suite.write_text(json.dumps(derive_suite(feed), indent=2, sort_keys=True) + "\n")
    samples = config_dir / SAMPLES_DIR
    for sample in sorted(samples.glob(f"{name}.*")) if samples.is_dir() else []:
        (config / SAMPLES_DIR).mkdir(exist_ok=True)
        shutil.copyfile(sample, config / SAMPLES_DIR / sample.name)
    return config


def smoke_environment(scratch: Path, config: Path, feature_repo: Path) -> dict[str, str]:
    """The child's environment: the caller's, minus its Airflow, MLflow and platform variables,
    plus a scratch home for each."""
    from mlops.core.settings import child_environment, project_root

    root = project_root()
    inherited = child_environment(bin_first=Path(sys.executable).parent)
    env = {k: v for k, v in inherited.items() if not k.startswith(ISOLATED_PREFIXES)}
    env |= {
        "MLOPS_HOME": str(scratch),
        "MLOPS_CONFIG_DIR": str(config),
        "MLOPS_FEATURE_REPO": str(feature_repo),
        "AIRFLOW_HOME": str(scratch / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{scratch}/airflow/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
    }
    return env


def run_smoke(
    use_case_file: Path,
    config_dir: Path,
    feature_repo: Path,
    scratch: Path,
    *,
    timeout: float,
    cache: Path | None = None,
) -> SmokeResult:
    """Run the smoke run of one use case in a child process; its result (``smoke.json``).

    ``cache`` keeps an empty migrated Airflow database and MLflow store, made by the first run
    (per Airflow and MLflow version); later runs copy them instead of migrating anew.

    A child that dies without writing its result, or overruns ``timeout`` seconds, gives a
    result with one failed step naming why (the last lines of its error output).
    """
    name = use_case_file.stem
    config = scratch_config(use_case_file, config_dir, scratch)
    (scratch / "airflow").mkdir(parents=True, exist_ok=True)
    env = smoke_environment(scratch, config, feature_repo)
    cmd = [sys.executable, "-m", "mlops", "check", "--smoke-child", name]
    cmd += ["--smoke-cache", str(cache)] if cache is not None else []
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=scratch, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return _crashed(name, f"the smoke run did not finish within {timeout:.0f} s", started)
    path = scratch / SMOKE_RESULT
    result: SmokeResult | None = json.loads(path.read_text()) if path.exists() else None
    if proc.returncode != 0 and (result is None or not any(s["status"] == "error" for s in result["steps"])):
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-6:] if line.strip())[-800:]
        crashed = _crashed(name, f"the smoke run stopped (exit status {proc.returncode}): {tail}", started)
        if result is not None:
            crashed["steps"] = result["steps"] + crashed["steps"]
        return crashed
    assert result is not None  # exit status 0 is only returned after the result is written
    return result


def _crashed(name: str, message: str, started: float) -> SmokeResult:
    step = SmokeStep(
        check="smoke", status="error", message=message, seconds=round(time.monotonic() - started, 1)
    )
    return SmokeResult(use_case=name, days=[], steps=[step], version=None, dry_run_frame=None)


# -- the child's side --------------------------------------------------------------------------------


def smoke_days(use_case: UseCase, today: dt.date) -> list[dt.date]:
    """The sample days: enough that labels of at least two days are known by the last one."""
    # A label feed's labels arrive one to four days after their events; batch labels after the delay.
    count = 6 if use_case.labels is not None else use_case.schema_.label_delay_days + 2
    last = max(ANCHOR_DAY, use_case.schedules.start_date + dt.timedelta(days=count - 1))
    last = min(last, today - dt.timedelta(days=1))
    return [last - dt.timedelta(days=count - 1 - i) for i in range(count)]


class _Steps:
    """The child's steps as they happen, written to ``smoke.json`` after each one."""

    def __init__(self, path: Path, result: SmokeResult) -> None:
        self.path, self.result = path, result
        self.started = time.monotonic()

    def add(self, check: str, status: StepStatus, message: str) -> bool:
        now = time.monotonic()
        self.result["steps"].append(
            SmokeStep(check=check, status=status, message=message, seconds=round(now - self.started, 1))
        )
        self.started = now
        self.save()
        return status != "error"

    def save(self) -> None:
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.result, indent=2))
        partial.replace(self.path)


def _land(use_case: UseCase, days: list[dt.date], config_dir: Path, landing_uri: str) -> None:
    from airflow.sdk import ObjectStoragePath

    from mlops.data.ingest import source_uri
    from mlops.dev.simulator import batch_bytes, delivered

    for day in days:
        feeds = [(use_case.feed("batch"), batch_for(use_case, day, config_dir, rows=ROWS))]
        if use_case.labels is not None:
            feeds.append(
                (use_case.feed("labels"), labels_for(use_case, day, config_dir, rows=ROWS, first_day=days[0]))
            )
        for feed, frame in feeds:
            path = ObjectStoragePath(source_uri(feed, day, landing_uri))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(batch_bytes(frame, feed.source.format))
            delivered(path, day)


def _run(dag: Any, day: dt.date, conf: dict[str, Any] | None = None, *, skip: str | None = None) -> Any:
    logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return dag.test(
        logical_date=logical, run_conf=conf or {"interval": day.isoformat()}, mark_success_pattern=skip
    )


def _states(run: Any) -> dict[str, str | None]:
    return {ti.task_id: (str(ti.state) if ti.state is not None else None) for ti in run.get_task_instances()}


def _why_failed(lake: Lake, dag_id: str, run: Any) -> str:
    """The failed task and its error, from the failure alert the task's callback recorded."""
    from mlops.core import layout
    from mlops.core.alerts import alert_id

    failed = sorted({task for task, state in _states(run).items() if state == "failed"})
    rel = layout.alert_record(layout.failure_scope(dag_id), "outbox", alert_id("failure", dag_id, run.run_id))
    text = lake.read_json(rel)["text"] if lake.exists(rel) else "no error was recorded; see the task log"
    text = text.split("): ", 1)[-1] if text.startswith("Airflow run failed:") else text
    return f"{dag_id}: task {', '.join(failed) or '(none)'} failed: {text}"


def _from_template(template: Path | None, target: Path, create: Any) -> None:
    """``target`` copied from ``template``, else made by ``create()`` and kept as the template."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if template is not None and template.is_file():
        _copy_sqlite(template, target)
        return
    create()
    if template is not None:
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(f"{template.name}.{time.time_ns()}.partial")
        _copy_sqlite(target, partial)
        partial.replace(template)  # atomic: a concurrent check sees the whole template or none


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (SQLite's backup: pages still in its WAL file too)."""
    import sqlite3

    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _empty_stores(tracking_uri: str, airflow_db: Path, cache: Path | None) -> None:
    """A migrated Airflow database and an empty MLflow store in the scratch home."""
    import airflow
    import mlflow
    from airflow.utils.db import initdb

    def mlflow_store() -> None:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments()
        client.search_registered_models()

    _from_template(cache / f"airflow-{airflow.__version__}.db" if cache else None, airflow_db, initdb)
    mlflow_db = Path(tracking_uri.removeprefix("sqlite:///"))
    _from_template(cache / f"mlflow-{mlflow.__version__}.db" if cache else None, mlflow_db, mlflow_store)


def smoke_child(name: str, cache: Path | None = None) -> int:
    """The child process: the smoke run of ``name`` in the scratch home its environment names."""
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake
    from mlops.core.settings import load_settings

    settings = load_settings()
    steps = _Steps(
        settings.home / SMOKE_RESULT,
        SmokeResult(use_case=name, days=[], steps=[], version=None, dry_run_frame=None),
    )
    steps.save()
    _empty_stores(settings.mlflow_tracking_uri, settings.home / "airflow" / "airflow.db", cache)
    use_case = get_use_case(name, settings.config_dir)
    lake = get_lake()
    days = smoke_days(use_case, dt.datetime.now(dt.UTC).date())
    steps.result["days"] = [d.isoformat() for d in days]
    _land(use_case, days, settings.config_dir, settings.landing_uri)
    dags = _load_dags(use_case, steps)
    if (
        dags is not None
        and _feeds(use_case, dags, days, lake, steps)
        and _training(use_case, dags, days[-1], lake, steps)
    ):
        _scoring_and_drift(use_case, dags, days[-1], lake, steps)
    return 0


def _load_dags(use_case: UseCase, steps: _Steps) -> dict[str, Any] | None:
    from airflow.dag_processing.dagbag import DagBag

    from mlops.core.settings import project_root

    bag = DagBag(str(project_root() / "dags"))
    problems = [
        f"{Path(path).name}: {error.strip().splitlines()[-1]}"
        for path, error in sorted(bag.import_errors.items())
    ]
    kinds = ["data", "training", "scoring", "drift"] + (["labels"] if use_case.labels is not None else [])
    for kind in kinds:
        dag = bag.dags.get(use_case.dag_id(kind))
        if dag is None:
            problems.append(f"DAG {use_case.dag_id(kind)} is missing")
        elif "config-error" in (dag.tags or []):
            problems.append(
                f"DAG {dag.dag_id} could not be built: {(dag.doc_md or '').split('```')[1].strip()}"
            )
    if problems:
        steps.add("smoke:dags", "error", "; ".join(problems))
        return None
    steps.add("smoke:dags", "ok", f"{len(kinds)} DAGs built: {', '.join(use_case.dag_id(k) for k in kinds)}")
    return dict(bag.dags)


def _feeds(use_case: UseCase, dags: dict[str, Any], days: list[dt.date], lake: Lake, steps: _Steps) -> bool:
    from mlops.core import layout

    kinds = ["data"] + (["labels"] if use_case.labels is not None else [])
    for kind in kinds:
        dag_id = use_case.dag_id(kind)
        for day in days:
            run = _run(dags[dag_id], day)
            if run.state != "success":
                return steps.add(
                    f"smoke:{kind}", "error", f"sample day {day}: {_why_failed(lake, dag_id, run)}"
                )
        stream = use_case.feed("batch" if kind == "data" else "labels").stream
        rows = sum(lake.read_json(layout.validation_summary(stream, d)).get("rows", 0) for d in days)
        steps.add(
            f"smoke:{kind}",
            "ok",
            f"{dag_id}: {len(days)} sample days ({days[0]}..{days[-1]}, {rows} rows) validated and stored",
        )
    return True


def _training(use_case: UseCase, dags: dict[str, Any], day: dt.date, lake: Lake, steps: _Steps) -> bool:
    """The training DAG with the real gate on the sample (dry run: the scratch registry has no
    champion, so this is the first-model judgement: outputs, thresholds, baseline, slices).
    True when a model was registered, whatever the gate said of it."""
    from mlops.model import registry

    dag_id = use_case.dag_id("training")
    mode = "disabled" if use_case.promotion.mode == "disabled" else "dry_run"
    conf = {"interval": day.isoformat(), "reason": CHECK_REASON, "search_budget": 1, "promotion_mode": mode}
    run = _run(dags[dag_id], day, conf)
    if run.state != "success":
        return steps.add("smoke:training", "error", _why_failed(lake, dag_id, run))
    entry = registry.promotion_history(lake, use_case.name)[-1]
    version = str(entry["version"])
    steps.result["version"] = version
    metrics = entry.get("challenger_metrics") or {}
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in use_case.promotion.thresholds if k in metrics)
    failed = list(entry.get("failed_checks") or [])
    if mode == "disabled":  # a disabled gate lists no failures; judge the evidence it gathered
        sanity = entry.get("sanity") or {}
        failed = [f"outputs: {p}" for p in sanity.get("problems", [])] + list(
            entry.get("threshold_failures") or []
        )
    client = registry.configure_mlflow()  # the scratch registry
    _export_holdout(use_case, entry, lake, steps)
    # Scoring and drift need a champion: the sample model, whatever the gate said of it.
    client.set_registered_model_alias(use_case.registered_model_name, registry.CHAMPION, version)
    if failed:
        steps.add(
            "smoke:training", "error",
            f"the model trained on the sample fails the gate ({shown or 'no metric'} on {entry.get('holdout_rows')} "
            f"holdout rows): {'; '.join(failed)}",
        )  # fmt: skip
    else:
        steps.add(
            "smoke:training",
            "ok",
            f"v{version} trained on the sample passes the gate: {shown or 'no thresholds set'}",
        )
    return True  # a model exists: scoring and drift run with it either way


def _export_holdout(use_case: UseCase, entry: Any, lake: Lake, steps: _Steps) -> None:
    """The sample holdout with the challenger's and the baseline's scores, for the dry-run gate."""
    from mlops.core import layout
    from mlops.model import registry
    from mlops.model.training import X_y, fit_baseline, predict_scores
    from mlops.model.training_set import read_split

    uri = str((entry.get("lineage") or {}).get("training_set_uri") or "")
    run_key = uri.rstrip("/").rsplit("/", 1)[-1]
    interval = str((entry.get("lineage") or {}).get("data_window", [None, None])[1])
    manifest = lake.read_json(layout.training_set_manifest(use_case.name, interval, run_key))
    holdout = read_split(lake, manifest, "holdout")
    X, _ = X_y(holdout, use_case)
    challenger = registry.load_model(use_case.registered_model_name, str(entry["version"]))
    baseline = fit_baseline(*X_y(read_split(lake, manifest, "train"), use_case), use_case.task)
    frame = holdout.assign(
        **{
            CHALLENGER_SCORE: predict_scores(challenger, X, use_case.task),
            BASELINE_SCORE: predict_scores(baseline, X, use_case.task),
        }
    )
    path = steps.path.parent / DRY_RUN_FRAME
    frame.to_parquet(path, index=False)
    steps.result["dry_run_frame"] = str(path)


def _scoring_and_drift(
    use_case: UseCase, dags: dict[str, Any], day: dt.date, lake: Lake, steps: _Steps
) -> None:
    from mlops.core import layout

    dag_id = use_case.dag_id("scoring")
    run = _run(dags[dag_id], day)
    if run.state != "success":
        steps.add("smoke:scoring", "error", _why_failed(lake, dag_id, run))
        return
    if not lake.exists(layout.predictions_manifest(use_case.name, day)):
        steps.add("smoke:scoring", "error", f"{dag_id} scored nothing for {day}: tasks {_states(run)}")
        return
    rows = lake.read_json(layout.predictions_manifest(use_case.name, day))["rows"]
    steps.add("smoke:scoring", "ok", f"{dag_id}: {rows} rows of {day} scored with the sample model")
    dag_id = use_case.dag_id("drift")
    run = _run(dags[dag_id], day, skip="^trigger_retrain$")  # no retrain: the drift check is what is tried
    if run.state != "success" or _states(run).get("check_drift") != "success":
        steps.add("smoke:drift", "error", _why_failed(lake, dag_id, run))
        return
    summary = lake.read_json(layout.drift_summary(use_case.name, day))
    verdict = "drift" if summary.get("drifted") else "no drift"
    steps.add("smoke:drift", "ok", f"{dag_id}: report written for {day} ({verdict} on the sample)")
