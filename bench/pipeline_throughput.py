"""Rows per second through the data half of the platform: extract -> validate -> features.

Lands one simulated churn batch (CSV, as the churn source delivers it) of ``--rows`` rows in
the landing folder, then times the tasks of the ``churn_data`` DAG one by one, exactly as the DAG
calls them: ``extract_batch`` (streamed into the archive with its content hash, then cut into
partitions of ``source.partition_mb``), ``check_partition`` (one mapped task per partition: parse
once, Great Expectations, the partition's features and labels built and staged as Arrow IPC),
``validate_batch`` (the partitions' results combined into the day's verdict and Data Docs) and
``materialize_features`` (the staged features and labels committed to the store in one go). The partition checks run on one warm worker process, then on two: "end-to-end, 2
workers" is the same day with the mapped checks spread over two workers, as on the Celery stack.

Two references are measured in the same run on the same file: a plain ``pandas.read_csv`` of
the landed batch, and the floor, a plain script that does the data half's work in one process
with nothing else (Arrow's multi-threaded CSV reader, the suite's checks as vectorised pandas,
the same features and labels, a Parquet write; ``phase_floor``). The ratio ``end-to-end rows/s / read_csv rows/s`` (= read_csv seconds /
end-to-end seconds) says what fraction of bare-parse speed the data half reaches; 0.1 means
the tasks together take as long as ten parses of the file; ``x floor`` says the same against
the floor. A second, smaller size shows how each stage scales.

Each phase is measured ``--repeats`` times (default 3) and the fastest run is reported, the
one least disturbed by other work on the machine; the 1-minute load average at each
measurement is recorded next to it. Every measured phase runs in a fresh process
(``multiprocessing`` "spawn"; the partition checks in worker processes of their own), so its
peak RSS (``ru_maxrss``) is its own, as a task's is; the parent only
orchestrates and never loads data, because a spawned child inherits its parent's
``ru_maxrss`` high-water mark at spawn time. One-off per-process costs (imports of
pandas/mlops/Airflow, Airflow's provider and plugin discovery, and Great Expectations' ~5-10 s
import) are paid before the clock starts; the GX import time is reported separately.

Run (from the project root; takes ~6-8 minutes at the default sizes on 2 cores)::

    .venv/bin/python bench/pipeline_throughput.py                      # --rows 1000000 100000
    .venv/bin/python bench/pipeline_throughput.py --rows 200000 20000  # quicker
    .venv/bin/python bench/pipeline_throughput.py --rows 10000000 --repeats 1  # ten million rows a day
    .venv/bin/python bench/pipeline_throughput.py --rows 10000000 --repeats 1 --feature-store postgres

``--feature-store postgres`` commits to the PostgreSQL store (a temporary database on
``--postgres``, default ``postgresql://postgres@127.0.0.1:5432``, dropped at the end) as the
production stack does: each check then also COPYs its partition into PostgreSQL.

Writes ``bench/results/pipeline_throughput.json``. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
USE_CASE = "churn"
FIRST_DAY = dt.date(2026, 3, 2)
STAGES = ("extract_batch", "check_partition", "validate_batch", "materialize_features")


# Helpers (run in the parent and in the children) ------------------------------------------------
def peak_rss_mb() -> float:
    """Whole-process peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a new interpreter so that its peak memory is not masked by others."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _context() -> tuple[Any, Any, Any, Any]:
    """Settings, use case, lake and feature store, the way the DAG's tasks build them."""
    from mlops.core.config import get_use_case
    from mlops.core.lake import Lake
    from mlops.core.settings import load_settings
    from mlops.data.feature_store import ParquetFeatureStore, PostgresFeatureStore

    settings = load_settings()
    use_case = get_use_case(USE_CASE, settings.config_dir)
    lake = Lake(settings.lake_uri)
    if settings.feature_store == "postgres":
        return settings, use_case, lake, PostgresFeatureStore(settings.feature_store_conn_id)
    return settings, use_case, lake, ParquetFeatureStore(lake)


def landing_path(day: dt.date) -> Path:
    from mlops.data.ingest import source_uri

    settings, use_case, _, _ = _context()
    uri = source_uri(use_case, day, settings.landing_uri)
    if not uri.startswith("file://"):
        raise ValueError(f"this benchmark lands files locally; MLOPS_LANDING_URI must be file://, got {uri}")
    return Path(uri.removeprefix("file://"))


# Phases (each runs in its own fresh process) ----------------------------------------------------
def phase_land(rows: int, day_iso: str) -> dict[str, Any]:
    """Not measured as a stage: the upstream system delivering the batch."""
    from mlops.dev.simulator import make_batch_bytes

    day = dt.date.fromisoformat(day_iso)
    started = time.perf_counter()
    data = make_batch_bytes(USE_CASE, day, "csv", rows=rows)
    path = landing_path(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"seconds": time.perf_counter() - started, "bytes": len(data), "path": str(path)}


def phase_read_csv(day_iso: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import pandas as pd

    path = landing_path(dt.date.fromisoformat(day_iso))
    imported = time.perf_counter() - t0
    load = os.getloadavg()[0]
    cpu = cpu_seconds()
    started = time.perf_counter()
    frame = pd.read_csv(path)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu,
        "rows": len(frame),
        "import_seconds": imported,
        "peak_rss_mb": peak_rss_mb(),
        "load_avg_1m": load,
    }


def _plain_checks(frame: Any, suite: dict[str, Any], parameters: dict[str, Any]) -> int:
    """The suite's expectations as plain vectorised pandas, for the floor: the count that failed."""
    import pandas as pd

    failed = 0
    for exp in suite["expectations"]:
        kind, kw = exp["type"], dict(exp["kwargs"])
        for key in ("min_value", "max_value"):
            if isinstance(kw.get(key), dict) and "$PARAMETER" in kw[key]:
                kw[key] = parameters[kw[key]["$PARAMETER"]]
        col = frame[kw["column"]] if "column" in kw and kw["column"] in frame else None
        if kind == "expect_table_row_count_to_be_between":
            ok = (kw["min_value"] is None or len(frame) >= kw["min_value"]) and (
                kw["max_value"] is None or len(frame) <= kw["max_value"]
            )
        elif kind == "expect_table_columns_to_match_set":
            ok = set(frame.columns) == set(kw["column_set"])
        elif kind == "expect_compound_columns_to_be_unique":
            ok = not frame.duplicated(kw["column_list"]).any()
        elif kind == "expect_column_to_exist":
            ok = col is not None
        elif kind == "expect_column_values_to_be_in_type_list":
            ok = col is not None and str(col.dtype) in kw["type_list"]
        elif kind == "expect_column_values_to_not_be_null":
            ok = col is not None and not col.isna().any()
        elif kind == "expect_column_values_to_be_between":
            present = col.dropna() if col is not None else pd.Series([])
            low, high = kw.get("min_value"), kw.get("max_value")
            ok = col is not None and bool(
                ((present >= low) if low is not None else True).all()
                & (
                    (present < high)
                    if kw.get("strict_max")
                    else (present <= high)
                    if high is not None
                    else True
                ).all()
            )
        elif kind == "expect_column_values_to_be_in_set":
            ok = col is not None and bool(col.dropna().isin(kw["value_set"]).all())
        else:
            raise ValueError(f"the floor does not implement {kind}")
        failed += not ok
    return failed


def phase_floor(day_iso: str) -> dict[str, Any]:
    """The floor: one plain process that parses the landed CSV with Arrow's multi-threaded reader,
    runs the suite's checks as vectorised pandas, builds the same features and labels and writes
    them as Parquet. No archive, no Great Expectations, no report, no feature-store bookkeeping."""
    t0 = time.perf_counter()
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from mlops.data.features import build_features, extract_labels
    from mlops.data.validation import event_time_window, load_suite

    settings, use_case, lake, _ = _context()
    warm_up(lake)
    day = dt.date.fromisoformat(day_iso)
    suite = load_suite(settings.config_dir, use_case)
    feed = use_case.feed("batch")
    window = event_time_window(day, feed.expectations.event_time_tolerance_hours, dt.datetime.now(dt.UTC))
    text = [name for name, col in use_case.schema_.columns.items() if col.type == "str"]
    out_dir = Path(tempfile.mkdtemp(prefix="floor-", dir=settings.home))
    out: dict[str, Any] = {"import_seconds": time.perf_counter() - t0, "load_avg_1m": os.getloadavg()[0]}
    cpu = cpu_seconds()
    started = time.perf_counter()
    table = pacsv.read_csv(
        landing_path(day), convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in text})
    )
    frame = table.to_pandas()
    out["failed_checks"] = _plain_checks(frame, suite, window)
    features = build_features(frame, use_case)
    pq.write_table(pa.Table.from_pandas(features, preserve_index=False), out_dir / "features.parquet")
    if use_case.schema_.target:
        labels = extract_labels(frame, use_case)
        pq.write_table(pa.Table.from_pandas(labels, preserve_index=False), out_dir / "labels.parquet")
    out["seconds"] = time.perf_counter() - started
    out["cpu_seconds"] = cpu_seconds() - cpu
    out["rows"] = len(frame)
    out["peak_rss_mb"] = peak_rss_mb()
    shutil.rmtree(out_dir, ignore_errors=True)
    return out


def warm_up(lake: Any) -> None:
    """Pay one-off per-process costs before the clock: the libraries the stages import lazily,
    Airflow's filesystem registry (provider discovery, on the lake's first call) and the hook
    lineage collector (it loads the Airflow plugins, on the first ``ObjectStoragePath.open``)."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from airflow.sdk import ObjectStoragePath

    from mlops.core.settings import load_settings

    lake.exists("")
    probe = load_settings().home / "warm_up.txt"
    probe.write_text("warm-up")
    with ObjectStoragePath(f"file://{probe}").open("rb") as fh:
        fh.read()


def phase_stage(stage: str, day_iso: str, arg: Any = None) -> dict[str, Any]:
    """One task of the data DAG, as the DAG calls it. ``arg``: the partition (check_partition) or
    the partition checks (validate_batch)."""
    t0 = time.perf_counter()
    from mlops.core import layout
    from mlops.data.tasks import check_partition, extract_and_split, materialize_features, validate_batch

    settings, use_case, lake, store = _context()
    warm_up(lake)
    day = dt.date.fromisoformat(day_iso)
    if stage == "extract_batch":
        # A repeat must do the work again: with the same bytes already archived it is a no-op.
        lake.delete(layout.raw_dir(use_case.name, day))
    out: dict[str, Any] = {"import_seconds": time.perf_counter() - t0}
    if stage in ("check_partition", "validate_batch"):
        t1 = time.perf_counter()
        import great_expectations  # noqa: F401  (seconds to import; kept off the clock)

        out["gx_import_seconds"] = time.perf_counter() - t1
    rss_before = peak_rss_mb()
    out["load_avg_1m"] = os.getloadavg()[0]
    cpu = cpu_seconds()
    started = time.perf_counter()
    if stage == "extract_batch":
        out["parts"] = extract_and_split(use_case, day, lake, settings.landing_uri)
        out["bytes"] = out["parts"][-1]["end"]
    elif stage == "check_partition":
        check = check_partition(use_case, day, lake, settings.config_dir, arg, store=store)
        if not check["passed"]:
            raise RuntimeError(f"partition {arg} of the simulated batch unexpectedly failed its checks")
        out["rows"] = check["rows"]
        out["check"] = check
    elif stage == "validate_batch":
        summary = validate_batch(use_case, day, lake, settings.config_dir, checks=arg)
        if not summary["passed"]:
            raise RuntimeError(f"the simulated batch unexpectedly failed validation: {summary['errors']}")
        out["rows"] = summary["rows"]
        out["expectations"] = summary["expectations_evaluated"]
    elif stage == "materialize_features":
        result = materialize_features(use_case, day, lake, store)
        out["rows"] = result["rows"]
    else:
        raise ValueError(f"unknown stage {stage!r}; known: {STAGES}")
    out["seconds"] = time.perf_counter() - started
    out["cpu_seconds"] = cpu_seconds() - cpu
    out["peak_rss_mb"] = peak_rss_mb()
    out["peak_rss_before_stage_mb"] = rss_before
    return out


def _worker_ready(barrier: Any) -> None:
    """Warm a pool worker (imports, GX) and wait until every worker of the pool is warm."""
    import great_expectations  # noqa: F401

    from mlops.data import tasks  # noqa: F401

    _, _, lake, _ = _context()
    warm_up(lake)
    barrier.wait()


def run_checks(day_iso: str, parts: list[Any], workers: int) -> dict[str, Any]:
    """The mapped ``check_partition`` tasks on ``workers`` warm worker processes: the wall time from
    the first partition handed out to the last one done (imports paid before), each check's own
    time and peak RSS."""
    import multiprocessing

    ctx = get_context("spawn")
    with (
        multiprocessing.Manager() as manager,
        ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool,
    ):
        barrier = manager.Barrier(workers)
        for ready in [pool.submit(_worker_ready, barrier) for _ in range(workers)]:
            ready.result()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        checks = list(pool.map(phase_stage, ["check_partition"] * len(parts), [day_iso] * len(parts), parts))
        wall = time.perf_counter() - started
    return {
        "workers": workers,
        "seconds": wall,
        "cpu_seconds": sum(c["cpu_seconds"] for c in checks),
        "partitions": len(parts),
        "partition_seconds": [c["seconds"] for c in checks],
        "peak_rss_mb": max(c["peak_rss_mb"] for c in checks),
        "load_avg_1m": load,
        "checks": [c["check"] for c in checks],
        "gx_import_seconds": checks[0]["gx_import_seconds"],
    }


# Orchestration (parent: stays small on purpose) -------------------------------------------------
def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest repeat (the least disturbed by other load), with every repeat's time and load
    kept, and the highest peak RSS over the repeats."""
    fastest = min(runs, key=lambda r: r["seconds"])
    return fastest | {
        "all_seconds": [r["seconds"] for r in runs],
        "all_cpu_seconds": [r["cpu_seconds"] for r in runs],
        "all_load_avg_1m": [r["load_avg_1m"] for r in runs],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def run_size(rows: int, day: dt.date, repeats: int) -> dict[str, Any]:
    print(f"\n== {rows:,} rows (day {day}) ==", flush=True)
    landed = in_fresh_process(phase_land, rows, day.isoformat())
    print(
        f"  landed {landed['bytes'] / 2**20:.1f} MiB CSV in {landed['seconds']:.1f} s (setup, not measured)",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {
        name: [] for name in ("read_csv", "floor", *STAGES, "check_partition x2", "one check task")
    }
    iso = day.isoformat()
    for rep in range(1, repeats + 1):
        runs["read_csv"].append(in_fresh_process(phase_read_csv, iso))
        if runs["read_csv"][-1]["rows"] != rows:
            raise RuntimeError(f"read_csv saw {runs['read_csv'][-1]['rows']} rows, expected {rows}")
        runs["floor"].append(in_fresh_process(phase_floor, iso))
        if runs["floor"][-1]["failed_checks"]:
            raise RuntimeError(
                f"the floor's checks failed {runs['floor'][-1]['failed_checks']} expectations on the simulated batch"
            )
        # In DAG order: each task reads what the one before wrote.
        runs["extract_batch"].append(in_fresh_process(phase_stage, "extract_batch", iso))
        parts = runs["extract_batch"][-1]["parts"]
        # Each measured check does its whole work: PostgreSQL stagings of an earlier run are
        # dropped first (else a check finds its rows staged and skips the COPY).
        _drop_stagings()
        runs["check_partition x2"].append(run_checks(iso, parts, 2))
        # As Airflow runs it: one partition (the largest) in a process of its own.
        largest = max(parts, key=lambda p: p["end"] - p["start"])
        _drop_stagings()
        runs["one check task"].append(in_fresh_process(phase_stage, "check_partition", iso, largest))
        _drop_stagings()
        runs["check_partition"].append(run_checks(iso, parts, 1))  # what the commit below takes
        runs["validate_batch"].append(
            in_fresh_process(phase_stage, "validate_batch", iso, runs["check_partition"][-1]["checks"])
        )
        runs["materialize_features"].append(in_fresh_process(phase_stage, "materialize_features", iso))
        times = ", ".join(f"{name} {r[-1]['seconds']:.2f} s" for name, r in runs.items())
        print(
            f"  repeat {rep}/{repeats} (load {runs['read_csv'][-1]['load_avg_1m']:.1f}, {len(parts)} partitions): {times}",
            flush=True,
        )
    baseline = best(runs["read_csv"])
    floor = best(runs["floor"])
    stages = {stage: best(runs[stage]) for stage in STAGES}
    two = best(runs["check_partition x2"])
    one_task = best(runs["one check task"])

    def end_to_end(checks: dict[str, Any]) -> dict[str, Any]:
        parts = [*(stages[s] for s in STAGES if s != "check_partition"), checks]
        seconds = sum(p["seconds"] for p in parts)
        return {
            "seconds": seconds,
            "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
            "rows_per_second": rows / seconds,
            "ratio_to_read_csv": baseline["seconds"] / seconds,
            "ratio_to_floor": floor["seconds"] / seconds,
            "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
            "load_avg_1m": max(p["load_avg_1m"] for p in parts),
        }

    one_worker, two_workers = end_to_end(stages["check_partition"]), end_to_end(two)
    return {
        "rows": rows,
        "day": iso,
        "csv_bytes": landed["bytes"],
        "land_seconds": landed["seconds"],
        "partitions": stages["check_partition"]["partitions"],
        "baseline_read_csv": baseline | {"rows_per_second": rows / baseline["seconds"]},
        "floor_plain_script": floor | {"rows_per_second": rows / floor["seconds"]},
        "stages": {k: _public(v) | {"rows_per_second": rows / v["seconds"]} for k, v in stages.items()},
        "check_partition_2_workers": _public(two) | {"rows_per_second": rows / two["seconds"]},
        "end_to_end": one_worker,
        "end_to_end_2_workers": two_workers | {"speedup": one_worker["seconds"] / two_workers["seconds"]},
        "check_partition_one_task": _public(one_task)
        | {"rows_per_second": one_task["rows"] / one_task["seconds"]},
        # Each task of the DAG in a process of its own, one partition per check, as Airflow runs them.
        "peak_rss_per_task_mb": max(
            [one_task["peak_rss_mb"], *(stages[s]["peak_rss_mb"] for s in STAGES if s != "check_partition")]
        ),
        "gx_import_seconds": stages["validate_batch"]["gx_import_seconds"],
    }


def _public(measured: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in measured.items() if k not in ("checks", "parts")}


def print_table(results: list[dict[str, Any]]) -> None:
    head = f"{'rows':>10}  {'stage':<22} {'seconds':>8} {'cpu s':>6} {'rows/s':>11} {'x read_csv':>10} {'x floor':>8} {'peak RSS MiB':>12} {'load':>5}"
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        base, floor = r["baseline_read_csv"], r["floor_plain_script"]
        lines = [("read_csv (baseline)", base), ("plain script (floor)", floor)]
        lines += [
            (name if name != "check_partition" else f"check_partition x{r['partitions']}", m)
            for name, m in r["stages"].items()
        ]
        lines.append(("  same on 2 workers", r["check_partition_2_workers"]))
        lines.append(("  one, as a task", r["check_partition_one_task"]))
        lines.append(("end-to-end, 1 worker", r["end_to_end"]))
        lines.append(("end-to-end, 2 workers", r["end_to_end_2_workers"]))
        for name, m in lines:
            ratio = m["rows_per_second"] / base["rows_per_second"]
            to_floor = m["rows_per_second"] / floor["rows_per_second"]
            print(
                f"{r['rows']:>10,}  {name:<22} {m['seconds']:>8.2f} {m['cpu_seconds']:>6.2f} {m['rows_per_second']:>11,.0f} {ratio:>10.3f} {to_floor:>8.3f} {m['peak_rss_mb']:>12,.0f} {m['load_avg_1m']:>5.1f}"
            )
        print(f"{'':>10}  2 workers / 1 worker: {r['end_to_end_2_workers']['speedup']:.2f}x end to end")
        print(
            f"{'':>10}  peak RSS of any task, one partition per check task: {r['peak_rss_per_task_mb']:,.0f} MiB"
        )
        print(f"{'':>10}  (Great Expectations import, not in the timings: {r['gx_import_seconds']:.1f} s)")
    if len(results) > 1:
        big, small = max(results, key=lambda r: r["rows"]), min(results, key=lambda r: r["rows"])
        print(
            f"\nscaling {small['rows']:,} -> {big['rows']:,} rows (rows/s at large size / rows/s at small size):"
        )
        for name in (*STAGES, "end_to_end"):
            a = big["end_to_end"] if name == "end_to_end" else big["stages"][name]
            b = small["end_to_end"] if name == "end_to_end" else small["stages"][name]
            print(f"  {name:<22} {a['rows_per_second'] / b['rows_per_second']:.2f}")


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[1_000_000, 100_000],
        help="batch sizes to run (default: 1000000 100000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measure each phase this many times; report the fastest (default 3)",
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="keep the temporary MLOPS_HOME for inspection"
    )
    parser.add_argument(
        "--feature-store",
        choices=("parquet", "postgres"),
        default="parquet",
        help="the store the day is committed to (default parquet, the embedded one)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="server for --feature-store postgres (a temporary database is made there)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if any(n < 100 for n in args.rows):
        parser.error("--rows must be at least 100 (the churn suite expects at least 50 rows)")

    home = tempfile.mkdtemp(prefix="bench-pipeline-")
    os.environ["MLOPS_HOME"] = home  # before any mlops settings are read; children inherit it
    os.environ.pop("MLOPS_LAKE_URI", None)
    os.environ.pop("MLOPS_LANDING_URI", None)
    from mlops.dev.embedded import apply_embedded_defaults  # light: only mlops.core.settings

    apply_embedded_defaults()  # AIRFLOW_HOME etc. under the temporary home, not ~/airflow
    database = _feature_database(args.postgres) if args.feature_store == "postgres" else None
    try:
        results = [
            run_size(rows, FIRST_DAY + dt.timedelta(days=i), args.repeats) for i, rows in enumerate(args.rows)
        ]
        print_table(results)
        payload = {
            "benchmark": "pipeline_throughput",
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "args": vars(args),
            "orchestrator_peak_rss_mb": peak_rss_mb(),
            "results": results,
        }
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / "pipeline_throughput.json"
        out.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {out}")
    finally:
        if args.keep_home:
            print(f"kept MLOPS_HOME={home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
        if database is not None:
            _sql_admin(args.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return 0


def _sql_admin(server: str, statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _drop_stagings() -> None:
    """Forget the PostgreSQL store's stagings (none with the Parquet store)."""
    url = os.environ.get("AIRFLOW_CONN_BENCH_FEATURES")
    if os.environ.get("MLOPS_FEATURE_STORE") != "postgres" or url is None:
        return
    import psycopg2
    from psycopg2 import sql

    from mlops.data.feature_store import STAGES

    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (STAGES,))
            if cur.fetchone()[0] is None:
                return
            cur.execute(sql.SQL("DELETE FROM {} RETURNING name").format(sql.Identifier(STAGES)))
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def _feature_database(server: str) -> str:
    """A new database for the PostgreSQL feature store, set as the store for every phase."""
    import uuid

    name = f"bench_features_{uuid.uuid4().hex[:8]}"
    _sql_admin(server, f'CREATE DATABASE "{name}"')
    os.environ["MLOPS_FEATURE_STORE"] = "postgres"
    os.environ["MLOPS_FEATURE_STORE_CONN_ID"] = "bench_features"
    os.environ["AIRFLOW_CONN_BENCH_FEATURES"] = f"{server}/{name}"
    return name


if __name__ == "__main__":
    sys.exit(main())
