"""Production-stack benchmark: scoring fan-out over Celery workers, and Airflow's overhead.

For 1 and then 2 Celery workers, starts the production stack natively (PostgreSQL, Redis, moto
S3, MLflow server, Airflow api-server / scheduler / dag-processor / workers; see
`tests/integration/stack.py`), loads P days of churn data, and measures:

* the training pipeline (prepare -> train -> promote) as an Airflow run on the stack, against the
  same three steps called in one plain Python process with the same settings (the floor);
* batch scoring of 1, 2, 4 and 8 partitions as one DAG run (mapped tasks), against scoring the
  same partitions one after another in plain Python;
* candidate search: a training run with ``--candidates`` (8) candidates, one mapped task each,
  in dry-run promotion mode (the wall time from trigger to the end of the run);
* with ``--data-rows N`` only: the data DAG on one day of N rows (extract from S3, partition
  checks as mapped tasks, features committed to PostgreSQL), the wall time and each task's.

Prints the ratios (stack / floor) and the fan-out speedup (1 worker / 2 workers) per partition
count and for the candidate search, and writes `bench/results/stack_fanout.json`.

Both workers share this machine's cores, and a HistGradientBoosting fit already uses every core
(OpenMP). ``--pin-workers`` runs worker i on core i only with one OpenMP thread per task, so one
worker vs two behaves like one one-core machine vs two; ``--search-only`` skips the training and
scoring measurements (writes `bench/results/stack_fanout_search_pinned.json` when pinned).

    .venv/bin/python bench/stack_fanout.py [--rows 20000] [--partitions 1 2 4 8] [--candidates 8] [--days 9]
                                           [--pin-workers] [--search-only]
    .venv/bin/python bench/stack_fanout.py --data-rows 10000000

Needs PostgreSQL and Redis on 127.0.0.1 (as for the integration tests); takes ~15 minutes here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.integration.stack: the same stack the integration test runs

START = dt.date(2026, 7, 1)


def _land(days: list[dt.date], rows: int) -> None:
    from tests.e2e.helpers import land

    for day in days:
        land("churn", day, rows=rows)


def _time_run(api: Any, stack: Any, dag_id: str, conf: dict[str, Any], run_id: str) -> float:
    t0 = time.perf_counter()
    r = api.trigger(dag_id, conf, run_id)
    r.raise_for_status()
    states = api.wait(dag_id, [run_id], stack, timeout=1800)
    if states[run_id] != "success":
        raise RuntimeError(f"{dag_id} {run_id} ended {states[run_id]}; logs in {stack.logs}")
    return time.perf_counter() - t0


def _plain_training(day: dt.date) -> float:
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake
    from mlops.data.feature_store import get_feature_store
    from mlops.model.gate import evaluate_and_promote
    from mlops.model.registration import train_and_register
    from mlops.model.training_set import prepare_training_set

    uc, lake = get_use_case("churn"), get_lake()
    t0 = time.perf_counter()
    manifest = prepare_training_set(uc, day, lake, get_feature_store(), "plain")
    trained = train_and_register(
        uc, manifest, lake, hyperparameters=None, dag_id="plain", airflow_run_id="plain", reason="bench"
    )
    evaluate_and_promote(uc, trained, manifest, lake, mode="dry_run", dag_id="plain", airflow_run_id="plain")
    return time.perf_counter() - t0


def _plain_scoring(days: list[dt.date]) -> float:
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake
    from mlops.data.feature_store import get_feature_store
    from mlops.model.scoring import score_partition

    uc, lake, store = get_use_case("churn"), get_lake(), get_feature_store()
    t0 = time.perf_counter()
    for day in days:
        score_partition(uc, day, lake, store)
    return time.perf_counter() - t0


@contextmanager
def _running_stack(workers: int, prefix: str, *, pin: bool = False) -> Iterator[tuple[Any, Any]]:
    """A fresh production stack with ``workers`` Celery workers, its DAGs parsed: (stack, REST client)."""
    from tests.integration.stack import Stack, wait_for
    from tests.integration.test_production_stack import Api
    from tests.support.slack_standin import SlackStandin

    slack = SlackStandin().start()
    stack = Stack(home=Path(mkdtemp(prefix=f"{prefix}-{workers}w-")))
    saved = dict(os.environ)
    try:
        dbs = stack.create_databases()
        stack.start_s3()
        stack.build_env(dbs, slack.webhook_url)
        os.environ.update(
            {k: v for k, v in stack.env.items() if k.startswith(("MLOPS_", "MLFLOW_", "AIRFLOW_CONN_"))}
        )
        stack.migrate()
        stack.start_mlflow()
        stack.start_airflow(workers=workers, pin_workers=pin)
        api = Api(stack.api_url, stack.username, stack.password)
        wait_for(
            "DAGs parsed",
            lambda: all(
                api.request("GET", f"/api/v2/dags/{d}").status_code == 200
                for d in ("churn_data", "churn_scoring")
            ),
            300,
            stack.logs,
        )
        yield stack, api
    finally:
        stack.stop()
        slack.stop()
        os.environ.clear()
        os.environ.update(saved)


def run_with_workers(
    workers: int,
    rows: int,
    partitions: list[int],
    candidates: int = 8,
    days_loaded: int | None = None,
    *,
    pin: bool = False,
    search_only: bool = False,
) -> dict[str, Any]:
    # Labels arrive days after their events: training needs more days than scoring does.
    days = [START + dt.timedelta(days=i) for i in range(max(days_loaded or 0, max(partitions) + 1))]
    with _running_stack(workers, "bench-stack", pin=pin) as (stack, api):
        _land(days, rows)
        run_ids = []
        for day in days:
            api.trigger("churn_data", {"interval": day.isoformat()}, f"bench__{day}").raise_for_status()
            run_ids.append(f"bench__{day}")
        api.wait("churn_data", run_ids, stack, timeout=1800)
        result: dict[str, Any] = {"workers": workers, "rows_per_partition": rows, "pinned": pin}
        if not search_only:
            result["training_stack_s"] = _time_run(
                api, stack, "churn_training", {"interval": days[-1].isoformat()}, "bench-train"
            )
            result["training_plain_s"] = _plain_training(days[-1])
        search = {"interval": days[-1].isoformat(), "search_budget": candidates, "promotion_mode": "dry_run"}
        result["search_s"] = _time_run(api, stack, "churn_training", search, "bench-search")
        print(
            f"  workers={workers} candidate search ({candidates} candidates): {result['search_s']:.1f}s",
            flush=True,
        )
        result["scoring"] = {}
        for p in [] if search_only else partitions:
            chosen = days[:p]
            stack_s = _time_run(
                api,
                stack,
                "churn_scoring",
                {"intervals": [d.isoformat() for d in chosen]},
                f"bench-score-{p}",
            )
            plain_s = _plain_scoring(chosen)
            result["scoring"][p] = {"stack_s": stack_s, "plain_s": plain_s}
            print(
                f"  workers={workers} partitions={p}: stack {stack_s:.1f}s, plain {plain_s:.1f}s", flush=True
            )
        return result


def _machine_cpu_seconds() -> float:
    """CPU seconds this machine has been busy since boot, all processes and cores (``/proc/stat``)."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def run_data_day(workers: int, rows: int, *, pin: bool = False) -> dict[str, Any]:
    """One day of ``rows`` rows through ``churn_data`` on the stack (S3 lake, PostgreSQL feature
    store): the wall time from trigger to the end of the run, and each task's duration."""
    day = START
    with _running_stack(workers, "bench-data", pin=pin) as (stack, api):
        t0 = time.perf_counter()
        _land([day], rows)
        land_s = time.perf_counter() - t0
        busy = _machine_cpu_seconds()
        seconds = _time_run(api, stack, "churn_data", {"interval": day.isoformat()}, f"bench-data-{rows}")
        busy_cores = (
            _machine_cpu_seconds() - busy
        ) / seconds  # workers, PostgreSQL, moto, scheduler, all together
        r = api.request(
            "GET", f"/api/v2/dags/churn_data/dagRuns/bench-data-{rows}/taskInstances", params={"limit": 500}
        )
        r.raise_for_status()
        tasks: dict[str, list[float]] = {}
        spans: dict[str, list[dt.datetime]] = {}
        for ti in r.json()["task_instances"]:
            tasks.setdefault(ti["task_id"], []).append(float(ti.get("duration") or 0))
            if ti.get("start_date") and ti.get("end_date"):
                span = spans.setdefault(ti["task_id"], [])
                span += [
                    dt.datetime.fromisoformat(ti["start_date"]),
                    dt.datetime.fromisoformat(ti["end_date"]),
                ]
        # A task's phase: its first start to its last end (the mapped checks overlap on 2 workers).
        phase_wall = {task: (max(span) - min(span)).total_seconds() for task, span in spans.items()}
        print(f"  workers={workers}: churn_data with {rows:,} rows in {seconds:.1f}s "
              f"({len(tasks.get('check_partition', []))} partitions), {busy_cores:.2f} of {os.cpu_count()} cores busy", flush=True)  # fmt: skip
        return {"workers": workers, "rows": rows, "pinned": pin, "land_s": land_s, "data_run_s": seconds, "task_seconds": tasks,
                "phase_wall_s": phase_wall, "machine_busy_cores": busy_cores}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per daily partition")
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--candidates", type=int, default=8, help="candidates in the search run")
    parser.add_argument(
        "--days", type=int, default=9, help="days of data loaded (at least max(partitions) + 1)"
    )
    parser.add_argument(
        "--pin-workers",
        action="store_true",
        help="worker i on CPU core i, one OpenMP thread per task (two one-core machines)",
    )
    parser.add_argument("--search-only", action="store_true", help="measure the candidate search only")
    parser.add_argument(
        "--data-rows", type=int, default=None, help="measure only the data DAG on one day of this many rows"
    )
    parser.add_argument("--only-workers", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("MLOPS_HOME", mkdtemp(prefix="bench-home-"))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    if args.data_rows:
        return data_day(args, out)
    if args.only_workers:
        result = run_with_workers(
            args.only_workers,
            args.rows,
            args.partitions,
            args.candidates,
            args.days,
            pin=args.pin_workers,
            search_only=args.search_only,
        )
        (out / f"stack_fanout_{args.only_workers}w.json").write_text(json.dumps(result, default=str))
        return 0
    # Each worker count in a fresh process: the S3 filesystem clients are cached per process.
    import subprocess

    runs = {}
    for w in (1, 2):
        cmd = [
            sys.executable,
            __file__,
            "--rows",
            str(args.rows),
            "--partitions",
            *map(str, args.partitions),
            "--candidates",
            str(args.candidates),
            "--days",
            str(args.days),
            "--only-workers",
            str(w),
        ]
        cmd += ["--pin-workers"] * args.pin_workers + ["--search-only"] * args.search_only
        subprocess.run(cmd, check=True)
        raw = json.loads((out / f"stack_fanout_{w}w.json").read_text())
        raw["scoring"] = {int(k): v for k, v in raw["scoring"].items()}
        runs[w] = raw
    print(f"\nTraining pipeline (rows/partition {args.rows}):")
    for w, r in runs.items():
        if args.search_only:
            break
        print(
            f"  {w} worker(s): stack {r['training_stack_s']:.1f}s vs plain Python {r['training_plain_s']:.1f}s -> ratio {r['training_stack_s'] / r['training_plain_s']:.2f}"
        )
    one_s, two_s = runs[1]["search_s"], runs[2]["search_s"]
    print(
        f"\nCandidate search ({args.candidates} candidates): 1 worker {one_s:.1f}s | 2 workers {two_s:.1f}s -> speedup {one_s / two_s:.2f}"
    )
    print("\nScoring fan-out: stack seconds (1 worker | 2 workers), speedup, floor (plain, sequential)")
    table = []
    for p in [] if args.search_only else args.partitions:
        one, two = runs[1]["scoring"][p], runs[2]["scoring"][p]
        speedup = one["stack_s"] / two["stack_s"]
        row = {
            "partitions": p,
            "one_worker_s": one["stack_s"],
            "two_workers_s": two["stack_s"],
            "speedup": speedup,
            "plain_s": two["plain_s"],
            "ratio_two_workers_to_plain": two["stack_s"] / two["plain_s"],
        }
        table.append(row)
        print(
            f"  {p} partition(s): {one['stack_s']:6.1f} | {two['stack_s']:6.1f}   speedup {speedup:.2f}   plain {two['plain_s']:6.1f}  (stack/plain {row['ratio_two_workers_to_plain']:.2f})"
        )
    search = {
        "candidates": args.candidates,
        "one_worker_s": one_s,
        "two_workers_s": two_s,
        "speedup": one_s / two_s,
    }
    search["pinned"] = args.pin_workers
    name = "stack_fanout_search_pinned.json" if args.search_only and args.pin_workers else "stack_fanout.json"
    (out / name).write_text(
        json.dumps({"runs": runs, "scoring": table, "search": search}, indent=2, default=str)
    )
    return 0


def data_day(args: argparse.Namespace, out: Path) -> int:
    """The data DAG on one large day, with 1 and then 2 workers (each in a fresh process)."""
    import subprocess

    if args.only_workers:
        result = run_data_day(args.only_workers, args.data_rows, pin=args.pin_workers)
        (out / f"stack_data_{args.only_workers}w.json").write_text(json.dumps(result))
        return 0
    runs = {}
    for w in (1, 2):
        cmd = [sys.executable, __file__, "--data-rows", str(args.data_rows), "--only-workers", str(w)]
        subprocess.run(cmd + ["--pin-workers"] * args.pin_workers, check=True)
        runs[w] = json.loads((out / f"stack_data_{w}w.json").read_text())
    one, two = runs[1]["data_run_s"], runs[2]["data_run_s"]
    print(
        f"\nData DAG, one day of {args.data_rows:,} rows: 1 worker {one:.1f}s | 2 workers {two:.1f}s -> speedup {one / two:.2f}"
    )
    # With 1 worker the machine is already busy on more than one core (PostgreSQL, moto, the
    # scheduler work alongside): the same CPU work on all cores cannot take less than this.
    ceiling = (os.cpu_count() or 1) / runs[1]["machine_busy_cores"]
    print(f"  cores busy: 1 worker {runs[1]['machine_busy_cores']:.2f}, 2 workers {runs[2]['machine_busy_cores']:.2f} "
          f"of {os.cpu_count()}; the most 2 workers can gain here with the same CPU work: {ceiling:.2f}x")  # fmt: skip
    for w, r in runs.items():
        for task, durations in sorted(r["task_seconds"].items()):
            wall = r.get("phase_wall_s", {}).get(task, 0.0)
            print(
                f"  {w} worker(s) {task:<22} x{len(durations):<3} sum {sum(durations):7.1f}s  max {max(durations):6.1f}s  phase wall {wall:6.1f}s"
            )
    # Amdahl: everything outside the mapped checks' phase stays serial; with that phase halved
    # exactly, 2 workers would take serial + checks / 2.
    checks = runs[1].get("phase_wall_s", {}).get("check_partition", 0.0)
    serial = one - checks
    amdahl = one / (serial + checks / 2)
    print(f"  1 worker: {serial:.1f}s outside the checks' phase, {checks:.1f}s in it; "
          f"with the checks halved exactly 2 workers gain at most {amdahl:.2f}x")  # fmt: skip
    (out / "stack_data.json").write_text(
        json.dumps(
            {
                "rows": args.data_rows,
                "runs": runs,
                "speedup": one / two,
                "cpu_ceiling": ceiling,
                "amdahl_bound": amdahl,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
