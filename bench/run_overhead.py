"""Per-run overhead of a small day: the real DAGs on the embedded service against the same tasks in one process.

``N`` days of 1,500-row churn snapshots and their label deliveries land; the embedded service
(``mlops.dev.service``: scheduler, DAG processor, triggerer, API server; SQLite) runs the
``churn_data`` and ``churn_labels`` DAG for each day (catchup). Measured, for each executor:

- per task: the median wall time Airflow records (the task's process, from its start to its end:
  Airflow start-up, the DAG file's parse, imports and the task's own work);
- the CPU time of all task processes per day (the executor's workers' reaped children);
- the share of each task's time spent before its own work: 1 - (the same task in one warm
  process / the task on the service).

The baseline, measured in the same run: the same DAGs with ``dag.test()`` in one process whose
libraries are already imported (a first day warms it up and is not counted), so each task costs
only its own work. Executors compared: Airflow's ``LocalExecutor`` (every task imports its
libraries) and the embedded default, ``PreloadingLocalExecutor`` (the workers import them once).

Run (from the project root; ~6 minutes)::

    .venv/bin/python bench/run_overhead.py          # --days 4 --rows 1500

Writes ``bench/results/run_overhead.json``. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAGS = ("churn_data", "churn_labels")
EXECUTORS = {
    "LocalExecutor": "LocalExecutor",
    "PreloadingLocalExecutor": "mlops.orchestration.executor.PreloadingLocalExecutor",
}


def _days(count: int) -> list[dt.date]:
    today = dt.datetime.now(dt.UTC).date()
    return [today - dt.timedelta(days=count - i) for i in range(count)]


def _prepare(home: Path, days: list[dt.date], rows: int) -> Path:
    """The demo's churn configuration starting on the first day, and the days' deliveries landed."""
    from mlops.dev.demo import demo_config
    from mlops.dev.simulator import batch_bytes, delivered, make_batch_bytes, simulate_labels

    config = demo_config(home, days[0])
    landing = home / "landing"
    for feed in ("churn", "churn_labels"):
        (landing / feed).mkdir(parents=True, exist_ok=True)
    for day in days:
        batch = landing / "churn" / f"{day.isoformat()}.csv"
        batch.write_bytes(make_batch_bytes("churn", day, "csv", rows=rows, with_labels=False))
        delivered(batch, day)
        labels = landing / "churn_labels" / f"{day.isoformat()}.csv"
        labels.write_bytes(batch_bytes(simulate_labels("churn", day, rows=rows), "csv"))
        delivered(labels, day)
    return config


def _env(home: Path, config: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    return (
        base
        | {
            "MLOPS_HOME": str(home),
            "MLOPS_CONFIG_DIR": str(config),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "GX_ANALYTICS_ENABLED": "False",
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "DO_NOT_TRACK": "true",
        }
        | extra
    )


def _task_cpu(pids: list[int]) -> float:
    """CPU seconds of the reaped children (the task processes) of the given worker processes."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.children_user + times.children_system
    return total


def on_service(days: list[dt.date]) -> dict[str, Any]:
    """(In a child process with the env set.) Run the days on the embedded service; task durations."""
    import psutil

    from mlops.dev.demo import Api, _dag_exists, _finished
    from mlops.dev.service import USER, service_for_settings

    service = service_for_settings()
    service.start()
    try:
        api = Api(service.url, USER, service.password())
        deadline = time.monotonic() + 300
        while not all(_dag_exists(api, d) for d in DAGS):
            if time.monotonic() > deadline:
                raise TimeoutError("the DAGs were not parsed within 300 s")
            time.sleep(2)
        scheduler = psutil.Process(service.running()["scheduler"])
        time.sleep(10)  # the executor's workers start (and preload) with the scheduler
        workers = [p.pid for p in scheduler.children(recursive=True)]
        cpu_before = _task_cpu(workers)
        started = time.monotonic()
        api.unpause(*DAGS)
        deadline = time.monotonic() + 1800
        while not all(_finished(api.runs(d), len(days)) for d in DAGS):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(days)} runs of {DAGS} not finished within 1800 s")
            time.sleep(2)
        wall = time.monotonic() - started
        cpu = _task_cpu(workers) - cpu_before
        durations: dict[str, list[float]] = {}
        failed = []
        for dag_id in DAGS:
            for run in api.runs(dag_id):
                if run["state"] != "success":
                    failed.append(f"{dag_id} {run['dag_run_id']}: {run['state']}")
                tis = api("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")[
                    "task_instances"
                ]
                for ti in tis:
                    if ti["state"] == "success" and ti["duration"] is not None:
                        durations.setdefault(f"{dag_id}.{ti['task_id']}", []).append(float(ti["duration"]))
        return {"durations": durations, "task_cpu_per_day": cpu / len(days), "wall": wall, "failed": failed}
    finally:
        service.stop()


def in_process(days: list[dt.date]) -> dict[str, Any]:
    """(In a child process with the env set.) The same DAGs with dag.test() in this one process."""
    from mlops.dev.embedded import apply_embedded_defaults

    apply_embedded_defaults()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    durations: dict[str, list[float]] = {}
    for n, day in enumerate(days):
        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        for dag_id in DAGS:
            run = bag.dags[dag_id].test(logical_date=logical, run_conf={"interval": day.isoformat()})
            if n == 0:
                continue  # warm-up: this process imports its libraries here
            for ti in run.get_task_instances():
                if ti.state == "success" and ti.duration is not None:
                    durations.setdefault(f"{dag_id}.{ti.task_id}", []).append(float(ti.duration))
    return {"durations": durations}


def _child(mode: str, home: Path, config: Path, days: list[dt.date], **env: str) -> dict[str, Any]:
    out = home / f"{mode}.json"
    argv = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--out",
        str(out),
        "--day-list",
        ",".join(d.isoformat() for d in days),
    ]
    proc = subprocess.run(argv, env=_env(home, config, **env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--child", choices=["service", "in-process"])
    parser.add_argument("--out")
    parser.add_argument("--day-list")
    args = parser.parse_args()
    if args.child:
        days = [dt.date.fromisoformat(d) for d in args.day_list.split(",")]
        result = on_service(days) if args.child == "service" else in_process(days)
        Path(args.out).write_text(json.dumps(result))
        return

    days = _days(args.days)
    base = Path(tempfile.mkdtemp(prefix="mlops-bench-overhead-"))
    try:
        results: dict[str, Any] = {}
        home = base / "in_process"
        print("baseline: the same DAGs with dag.test() in one warm process ...", flush=True)
        # One more day than measured: the first warms the process up.
        warm = [days[0] - dt.timedelta(days=1), *days]
        config = _prepare(home, warm, args.rows)
        results["in_process"] = _child("in-process", home, config, warm)
        for label, executor in EXECUTORS.items():
            home = base / label
            config = _prepare(home, days, args.rows)
            print(f"{label}: {args.days} days of {args.rows} rows on the embedded service ...", flush=True)
            results[label] = _child("service", home, config, days, AIRFLOW__CORE__EXECUTOR=executor)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    base_med = {k: statistics.median(v) for k, v in results["in_process"]["durations"].items()}
    report: dict[str, Any] = {"days": args.days, "rows": args.rows, "in_process": base_med, "executors": {}}
    tasks = sorted(base_med)
    header = f"{'task':44} {'one process':>11}"
    for label in EXECUTORS:
        header += f" | {label[:24]:>24} {'overhead':>8}"
    print("\nmedian task wall time per day (s)\n" + header)
    for label in EXECUTORS:
        med = {k: statistics.median(v) for k, v in results[label]["durations"].items()}
        report["executors"][label] = {
            "task_seconds": med,
            "overhead_share": {k: 1 - base_med[k] / med[k] for k in tasks if k in med and med[k] > 0},
            "task_cpu_per_day": results[label]["task_cpu_per_day"],
            "wall": results[label]["wall"],
            "failed_runs": results[label]["failed"],
        }
    for task in tasks:
        line = f"{task:44} {base_med[task]:11.2f}"
        for label in EXECUTORS:
            entry = report["executors"][label]
            line += f" | {entry['task_seconds'].get(task, float('nan')):24.2f} {entry['overhead_share'].get(task, float('nan')):8.0%}"
        print(line)
    for dag in DAGS:
        one = sum(v for k, v in base_med.items() if k.startswith(dag + "."))
        line = f"{dag + ' (all tasks, one day)':44} {one:11.2f}"
        for label in EXECUTORS:
            total = sum(
                v for k, v in report["executors"][label]["task_seconds"].items() if k.startswith(dag + ".")
            )
            report["executors"][label].setdefault("day_task_seconds", {})[dag] = total
            line += f" | {total:24.2f} {1 - one / total if total else float('nan'):8.0%}"
        print(line)
    first, second = (report["executors"][label] for label in EXECUTORS)
    print(
        f"\ntask CPU per day (both DAGs): {first['task_cpu_per_day']:.1f} s -> {second['task_cpu_per_day']:.1f} s"
    )
    data = "churn_data"
    print(
        f"a {args.rows}-row data day, task time: {first['day_task_seconds'][data]:.1f} s -> "
        f"{second['day_task_seconds'][data]:.1f} s ({first['day_task_seconds'][data] / second['day_task_seconds'][data]:.1f}x)"
    )
    for label in EXECUTORS:
        if report["executors"][label]["failed_runs"]:
            print(f"WARNING {label}: runs not successful: {report['executors'][label]['failed_runs']}")
    out = ROOT / "bench" / "results" / "run_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "include"))
    main()
