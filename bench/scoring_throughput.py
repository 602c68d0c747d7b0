"""Batch scoring throughput and peak memory: ``score_partition`` against a bare ``predict_proba``.

Setup (not measured): a churn model is trained once on ``--train-rows`` simulated rows with
``make_pipeline`` + ``build_features`` and registered in a temporary MLflow (SQLite store,
local artifacts) as version 1 of ``churn_model`` with alias ``champion``, the way the training
DAG registers it (skops format, allow-listed types). For each size a feature partition
``features/churn/<day>.parquet`` (+ its ``_manifests/<day>.json``) is written to the
ParquetFeatureStore in chunks of 1M rows (simulated days, shifted onto the partition's day and
given disjoint ids) with row groups of 100k rows, so generating 10M rows never holds 10M rows.

Measured, each in a fresh process (``multiprocessing`` "spawn") so that peaks do not mask each
other; imports and the MLflow store's start-up are paid before the clock starts:

* platform: ``score_partition(use_case, day, lake, store)`` - champion lookup and model load
  from the registry, chunked read of the partition, feature statistics, ``predict_proba``,
  streamed Parquet write and manifest. Wall time and peak RSS (``ru_maxrss``).
* raw (baseline): ``model.predict_proba(X)[:, 1]`` on the same rows already in memory; the
  partition is loaded whole into a DataFrame and the model loaded before the clock, and
  ``predict_proba`` is timed over slices and summed, once with 1M-row slices and once with
  250k-row slices (``--raw-slice-rows``; 250k is churn's ``scoring.chunk_rows``), after one
  1,000-row warm-up call. The faster slicing is the baseline, and score_partition gets no
  warm-up, so the platform / raw ratio errs against the platform.
* with features: the raw simulated rows as landed (CSV) read in ``chunk_rows`` chunks,
  ``build_features``, ``predict_proba``, predictions streamed to Parquet (model loaded before
  the clock). Shows what computing features on the fly would cost on top of scoring.

Each variant runs ``--repeats`` times (default 3), interleaved, and the fastest run is reported
(the least disturbed by other work on the machine); every run's time and 1-minute load average
are kept in the JSON. The parent process only orchestrates and never loads data, because a
spawned child starts with its parent's ``ru_maxrss`` high-water mark.

The goal in the issue: platform rows/s >= 0.7 x raw rows/s, and platform peak RSS flat in the
row count (10M / 1M ~ 1). The raw baseline holds all rows, so its peak grows with the size.

Run (from the project root; ~20-25 minutes at the default sizes on 2 cores, a few GB of RAM)::

    .venv/bin/python bench/scoring_throughput.py                       # --rows 1000000 10000000
    .venv/bin/python bench/scoring_throughput.py --rows 200000 1000000 # quicker

Writes ``bench/results/scoring_throughput.json``. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
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
TRAIN_DAY = dt.date(2026, 1, 10)
FIRST_PARTITION_DAY = dt.date(2026, 3, 1)
ROW_GROUP_ROWS = 100_000
ID_STRIDE = 10_000_000  # simulated ids of one chunk stay below 4 x chunk rows; chunks get disjoint ranges


# Helpers (run in the parent and in the children) ------------------------------------------------
def peak_rss_mb() -> float:
    """Whole-process peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a new interpreter so that its peak memory is not masked by others.

    The parent must stay small: a spawned child starts with its parent's ru_maxrss high-water mark.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _quiet() -> None:
    for name in ("mlflow", "alembic", "airflow", "urllib3", "skops"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


def _context() -> tuple[Any, Any, Any, Any]:
    """Settings, use case, lake and feature store, the way the DAG's tasks build them."""
    from mlops.core.config import get_use_case
    from mlops.core.lake import Lake
    from mlops.core.settings import load_settings
    from mlops.data.feature_store import ParquetFeatureStore

    settings = load_settings()
    use_case = get_use_case(USE_CASE, settings.config_dir)
    lake = Lake(settings.lake_uri)
    return settings, use_case, lake, ParquetFeatureStore(lake)


def warm_up(lake: Any) -> None:
    """One-off per-process costs before the clock: heavy imports, Airflow's filesystem registry,
    and the MLflow SQLite store (created and schema-checked once per process, then cached)."""
    import mlflow.sklearn  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import skops.io  # noqa: F401

    from mlops.model import registry

    lake.exists("")
    client = registry.configure_mlflow()
    client.search_registered_models(max_results=1)


def raw_csv_path(day: dt.date) -> Path:
    from mlops.data.ingest import source_uri

    settings, use_case, _, _ = _context()
    return Path(source_uri(use_case, day, settings.landing_uri).removeprefix("file://"))


# Setup phases (fresh processes, not measured) ---------------------------------------------------
def phase_train_register(train_rows: int) -> dict[str, Any]:
    """Fit the configured pipeline on simulated rows; register it as churn_model v1 @champion."""
    _quiet()
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlops.data.features import build_features
    from mlops.dev.simulator import simulate_batch
    from mlops.model import registry
    from mlops.model.registration import skops_trusted_types
    from mlops.model.training import make_pipeline, predict_scores

    _, use_case, _, _ = _context()
    batch = simulate_batch(USE_CASE, TRAIN_DAY, rows=train_rows)
    X = build_features(batch, use_case)[use_case.feature_names]
    y = batch[use_case.schema_.target].to_numpy()
    started = time.perf_counter()
    pipe = make_pipeline(use_case).fit(X, y)
    fit_seconds = time.perf_counter() - started

    client = registry.configure_mlflow()
    experiment_id = registry.ensure_experiment(client, use_case)
    name = use_case.registered_model_name
    with mlflow.start_run(experiment_id=experiment_id, run_name="bench-scoring"):
        example = X.head(5)
        info = mlflow.sklearn.log_model(
            sk_model=pipe,
            name="model",
            signature=infer_signature(example, predict_scores(pipe, example, use_case.task)),
            registered_model_name=name,
            skops_trusted_types=skops_trusted_types(pipe),
        )
    version = str(info.registered_model_version)
    if version != "1":
        raise RuntimeError(f"expected a fresh registry (version 1 of {name!r}), got version {version}")
    client.set_registered_model_alias(name, registry.CHAMPION, version)
    return {
        "train_rows": train_rows,
        "fit_seconds": fit_seconds,
        "model": f"{name} v{version} @{registry.CHAMPION}",
    }


def phase_generate(rows: int, day_iso: str, chunk_rows: int, with_raw_csv: bool) -> dict[str, Any]:
    """Write the feature partition (and the raw rows as CSV) chunk by chunk, never all rows at once."""
    import hashlib

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.data.features import build_features
    from mlops.dev.simulator import simulate_batch

    _, use_case, lake, store = _context()
    day = dt.date.fromisoformat(day_iso)
    schema = use_case.schema_
    csv_path = raw_csv_path(day)
    if with_raw_csv:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        csv_path.unlink(missing_ok=True)
    # frame_hash() of the whole partition, computed incrementally: its row hashes are per row.
    digest = hashlib.sha256()
    columns: list[str] = []
    written = 0
    started = time.perf_counter()

    def write(fh: Any) -> None:
        nonlocal written, columns
        writer = None
        try:
            for i, start in enumerate(range(0, rows, chunk_rows)):
                n = min(chunk_rows, rows - start)
                batch = simulate_batch(USE_CASE, day + dt.timedelta(days=i), rows=n)
                # Onto the partition's day, with ids disjoint from the other chunks.
                batch[schema.event_time] = batch[schema.event_time] - pd.Timedelta(days=i)
                batch[schema.entity] = batch[schema.entity] + i * ID_STRIDE
                if with_raw_csv:
                    batch.to_csv(
                        csv_path, mode="a", header=(i == 0), index=False, date_format="%Y-%m-%dT%H:%M:%S"
                    )
                features = build_features(batch, use_case)
                del batch
                digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
                columns = list(features.columns)
                table = pa.Table.from_pandas(features, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(fh, table.schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                written += n
        finally:
            if writer is not None:
                writer.close()

    lake.write_with(f"features/{USE_CASE}/{day.isoformat()}.parquet", write)
    digest.update(",".join(map(str, columns)).encode())
    manifest = {
        "use_case": USE_CASE,
        "interval": day.isoformat(),
        "rows": written,
        "label_rows": 0,  # the benchmark scores features only; no labels partition is written
        "content_hash": digest.hexdigest(),
    }
    lake.write_json(f"features/{USE_CASE}/_manifests/{day.isoformat()}.json", manifest)
    if store.partitions(USE_CASE)[day]["rows"] != rows:
        raise RuntimeError(f"the feature store does not list {rows} rows for {day}")
    return {
        "seconds": time.perf_counter() - started,
        "features_bytes": lake.path(f"features/{USE_CASE}/{day.isoformat()}.parquet").stat().st_size,
        "raw_csv_bytes": csv_path.stat().st_size if with_raw_csv else None,
        "peak_rss_mb": peak_rss_mb(),
    }


# Measured phases (fresh processes) --------------------------------------------------------------
def phase_platform(day_iso: str) -> dict[str, Any]:
    _quiet()
    from mlops.model.scoring import score_partition

    _, use_case, lake, store = _context()
    warm_up(lake)
    rss_before = peak_rss_mb()
    load = os.getloadavg()[0]
    cpu = cpu_seconds()
    started = time.perf_counter()
    manifest = score_partition(use_case, dt.date.fromisoformat(day_iso), lake, store)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu,
        "rows": manifest["rows"],
        "loop_seconds": manifest["seconds"],  # read + stats + predict + write, without the model load
        "chunk_rows": use_case.scoring.chunk_rows,
        "model_version": manifest["model_version"],
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_mb": rss_before,
        "load_avg_1m": load,
    }


def phase_raw(day_iso: str, slice_sizes: list[int]) -> dict[str, Any]:
    _quiet()
    import pandas as pd

    from mlops.model import registry

    _, use_case, lake, _ = _context()
    warm_up(lake)
    model = registry.load_model(use_case.registered_model_name, "1")
    with lake.open_read(f"features/{USE_CASE}/{day_iso}.parquet") as fh:
        X = pd.read_parquet(fh, columns=use_case.feature_names)
    n = len(X)
    # One small call first: the first predict_proba of a process pays lazy imports and OpenMP
    # thread start-up. score_partition is not warmed up like this, so the ratio is conservative.
    model.predict_proba(X.iloc[:1000])
    load = os.getloadavg()[0]
    by_slice = {}
    for slice_rows in slice_sizes:  # each size is one full pass over the same in-memory rows
        seconds = cpu = checksum = 0.0
        for start in range(0, n, slice_rows):
            part = X.iloc[start : start + slice_rows]
            c0, t0 = cpu_seconds(), time.perf_counter()
            scores = model.predict_proba(part)[:, 1]
            seconds += time.perf_counter() - t0
            cpu += cpu_seconds() - c0
            checksum += float(scores.sum())
        by_slice[slice_rows] = {"seconds": seconds, "cpu_seconds": cpu, "mean_score": checksum / n}
    fastest = min(by_slice, key=lambda k: by_slice[k]["seconds"])
    # The baseline is the fastest slicing: the platform/raw ratio is then a lower bound.
    return by_slice[fastest] | {
        "slice_rows": fastest,
        "by_slice": by_slice,
        "rows": n,
        "peak_rss_mb": peak_rss_mb(),
        "load_avg_1m": load,
    }


def phase_with_features(day_iso: str) -> dict[str, Any]:
    """Raw CSV rows -> build_features -> predict -> Parquet, chunked like score_partition."""
    _quiet()
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.data.features import ENTITY, EVENT_TIME, build_features
    from mlops.model import registry
    from mlops.model.training import predict_scores

    _, use_case, lake, _ = _context()
    warm_up(lake)
    day = dt.date.fromisoformat(day_iso)
    model = registry.load_model(use_case.registered_model_name, "1")
    chunk_rows = use_case.scoring.chunk_rows
    schema = pa.schema([(ENTITY, pa.int64()), (EVENT_TIME, pa.timestamp("us")), ("score", pa.float64())])
    path = raw_csv_path(day)
    rows = 0
    rss_before = peak_rss_mb()
    load = os.getloadavg()[0]
    cpu = cpu_seconds()
    started = time.perf_counter()

    def write(fh: Any) -> None:
        nonlocal rows
        with pq.ParquetWriter(fh, schema) as writer:
            for chunk in pd.read_csv(path, chunksize=chunk_rows):
                chunk[use_case.schema_.event_time] = pd.to_datetime(
                    chunk[use_case.schema_.event_time], format="ISO8601"
                )
                features = build_features(chunk, use_case)
                scores = predict_scores(model, features[use_case.feature_names], use_case.task)
                rows += len(features)
                writer.write_table(
                    pa.table(
                        {
                            ENTITY: pa.array(features[ENTITY].to_numpy(), pa.int64()),
                            EVENT_TIME: pa.array(features[EVENT_TIME].to_numpy(), pa.timestamp("us")),
                            "score": pa.array(scores, pa.float64()),
                        },
                        schema=schema,
                    )
                )

    lake.write_with(f"bench/predictions_from_raw/{USE_CASE}/{day_iso}.parquet", write)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "rows": rows,
        "chunk_rows": chunk_rows,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_mb": rss_before,
        "load_avg_1m": load,
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


def run_size(rows: int, day: dt.date, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {rows:,} rows (partition {day}) ==", flush=True)
    gen = in_fresh_process(
        phase_generate, rows, day.isoformat(), args.generate_chunk_rows, args.with_features
    )
    print(
        f"  generated the partition ({gen['features_bytes'] / 2**20:.0f} MiB Parquet) in {gen['seconds']:.0f} s"
        f" with peak RSS {gen['peak_rss_mb']:.0f} MiB (setup, not measured)",
        flush=True,
    )
    out: dict[str, Any] = {"rows": rows, "day": day.isoformat(), "generate": gen}
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "platform": []}
    if args.with_features:
        runs["with_features"] = []
    for rep in range(1, args.repeats + 1):  # interleaved, so that a burst of other load hits one repeat
        runs["raw"].append(in_fresh_process(phase_raw, day.isoformat(), args.raw_slice_rows))
        runs["platform"].append(in_fresh_process(phase_platform, day.isoformat()))
        if args.with_features:
            runs["with_features"].append(in_fresh_process(phase_with_features, day.isoformat()))
        for name, r in runs.items():
            if r[-1]["rows"] != rows:
                raise RuntimeError(f"{name} saw {r[-1]['rows']} rows, expected {rows}")
        times = ", ".join(
            f"{name} {r[-1]['seconds']:.2f} s (load {r[-1]['load_avg_1m']:.1f})" for name, r in runs.items()
        )
        print(f"  repeat {rep}/{args.repeats}: {times}", flush=True)
    for name, r in runs.items():
        out[name] = best(r)
    raw_rps = rows / out["raw"]["seconds"]
    for key in ("raw", "platform", "with_features"):
        if key in out:
            out[key]["rows_per_second"] = rows / out[key]["seconds"]
            out[key]["ratio_to_raw"] = out[key]["rows_per_second"] / raw_rps
    out["platform"]["loop_rows_per_second"] = rows / out["platform"]["loop_seconds"]
    out["platform"]["loop_ratio_to_raw"] = out["platform"]["loop_rows_per_second"] / raw_rps
    return out


def print_table(results: list[dict[str, Any]]) -> dict[str, Any]:
    head = f"{'rows':>11}  {'variant':<50} {'seconds':>8} {'cpu s':>7} {'rows/s':>11} {'x raw':>6} {'peak RSS MiB':>12} {'load':>5}"
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        p = r["platform"]
        raw = r["raw"]
        lines: list[tuple[str, float, float | None, float, float, float | None, float | None]] = [
            (
                f"raw predict_proba, {int(size):,}-row slices"
                + (" (baseline)" if int(size) == raw["slice_rows"] else ""),
                m["seconds"],
                m["cpu_seconds"],
                r["rows"] / m["seconds"],
                raw["seconds"] / m["seconds"],
                raw["peak_rss_mb"] if int(size) == raw["slice_rows"] else None,
                raw["load_avg_1m"] if int(size) == raw["slice_rows"] else None,
            )
            for size, m in raw["by_slice"].items()
        ]
        lines += [
            (
                "platform score_partition",
                p["seconds"],
                p["cpu_seconds"],
                p["rows_per_second"],
                p["ratio_to_raw"],
                p["peak_rss_mb"],
                p["load_avg_1m"],
            ),
            (
                "  of which read+predict+write (no model load)",
                p["loop_seconds"],
                None,
                p["loop_rows_per_second"],
                p["loop_ratio_to_raw"],
                None,
                None,
            ),
        ]
        if "with_features" in r:
            wf = r["with_features"]
            lines.append(
                (
                    "raw CSV -> build_features -> predict -> write",
                    wf["seconds"],
                    wf["cpu_seconds"],
                    wf["rows_per_second"],
                    wf["ratio_to_raw"],
                    wf["peak_rss_mb"],
                    wf["load_avg_1m"],
                )
            )
        for name, sec, cpu, rps, ratio, rss, load in lines:
            cpu_text = f"{cpu:>7.1f}" if cpu is not None else f"{'':>7}"
            rss_text = f"{rss:>12,.0f}" if rss is not None else f"{'':>12}"
            load_text = f"{load:>5.1f}" if load is not None else ""
            print(
                f"{r['rows']:>11,}  {name:<50} {sec:>8.2f} {cpu_text} {rps:>11,.0f} {ratio:>6.2f} {rss_text} {load_text}"
            )
    summary: dict[str, Any] = {}
    if len(results) > 1:
        small, big = min(results, key=lambda r: r["rows"]), max(results, key=lambda r: r["rows"])
        summary = {
            "rows": [small["rows"], big["rows"]],
            "platform_peak_rss_ratio": big["platform"]["peak_rss_mb"] / small["platform"]["peak_rss_mb"],
            "raw_peak_rss_ratio": big["raw"]["peak_rss_mb"] / small["raw"]["peak_rss_mb"],
        }
        print(
            f"\npeak RSS {big['rows']:,} / {small['rows']:,} rows: platform {summary['platform_peak_rss_ratio']:.2f}"
            f" ({small['platform']['peak_rss_mb']:,.0f} -> {big['platform']['peak_rss_mb']:,.0f} MiB),"
            f" raw baseline {summary['raw_peak_rss_ratio']:.2f}"
        )
    return summary


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="partition sizes (default: 1000000 10000000)",
    )
    parser.add_argument(
        "--train-rows", type=int, default=50_000, help="simulated rows the model is trained on"
    )
    parser.add_argument(
        "--raw-slice-rows",
        type=int,
        nargs="+",
        default=[1_000_000, 250_000],
        help="the baseline times predict_proba over slices of each of these sizes (default 1000000 250000,"
        " the second being churn's scoring.chunk_rows) and keeps the fastest",
    )
    parser.add_argument(
        "--generate-chunk-rows",
        type=int,
        default=1_000_000,
        help="rows simulated and written per chunk when generating a partition",
    )
    parser.add_argument(
        "--no-with-features",
        dest="with_features",
        action="store_false",
        help="skip the 'raw CSV -> features -> predict -> write' variant",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measure each variant this many times, interleaved; report the fastest (default 3)",
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="keep the temporary MLOPS_HOME for inspection"
    )
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="bench-scoring-")
    # Before any mlops settings are read; the spawned children inherit the environment.
    os.environ["MLOPS_HOME"] = home
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    os.environ["MLOPS_MLFLOW_ARTIFACTS_URI"] = f"file://{home}/artifacts"
    for name in ("MLOPS_LAKE_URI", "MLOPS_LANDING_URI", "MLOPS_FEATURE_STORE", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    from mlops.dev.embedded import apply_embedded_defaults  # light: only mlops.core.settings

    apply_embedded_defaults()  # AIRFLOW_HOME etc. under the temporary home, not ~/airflow
    try:
        print("training and registering the champion ...", flush=True)
        trained = in_fresh_process(phase_train_register, args.train_rows)
        print(
            f"  {trained['model']} (fit on {trained['train_rows']:,} rows in {trained['fit_seconds']:.1f} s)",
            flush=True,
        )
        results = [
            run_size(rows, FIRST_PARTITION_DAY + dt.timedelta(days=30 * i), args)
            for i, rows in enumerate(args.rows)
        ]
        summary = print_table(results)
        payload = {
            "benchmark": "scoring_throughput",
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "args": vars(args),
            "model": trained,
            "orchestrator_peak_rss_mb": peak_rss_mb(),
            "results": results,
            "summary": summary,
        }
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / "scoring_throughput.json"
        out.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {out}")
    finally:
        if args.keep_home:
            print(f"kept MLOPS_HOME={home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
