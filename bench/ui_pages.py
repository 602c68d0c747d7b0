"""The ML platform pages with months of history: how long each takes to build, against reading its records.

A real history is made once by the platform's own task functions (``tests/support/history.py``:
12 days, a quarantined day, a first model, scoring and drift checks). Its per-day records
(raw manifests, validation summaries, Data Docs, prediction manifests, drift summaries) are then
copied to ``--days`` (180) consecutive days, dates rewritten, as if the platform had run that
long. Each page is rendered ``--repeat`` times (``mlops.orchestration.ui.pages.render``, what
the plugin's endpoint returns, without the HTTP hop): the first with the records cache of the
process empty (``cold``, what the first view after a restart costs), then warm; the baseline,
measured in the same run, is reading and parsing every record file under the roots the page reads
(``json.loads`` of each file) and nothing else. Reported per page: the cold time, the median warm
time, the ratio warm / baseline, and the HTML size.

Run (from the project root; ~2 minutes)::

    .venv/bin/python bench/ui_pages.py          # --days 180 --repeat 5

Writes ``bench/results/ui_pages.json``. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
START = dt.date(2026, 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    os.environ.update(
        MLOPS_HOME=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow/mlflow.db",
        MLOPS_MLFLOW_ARTIFACTS_URI=f"file://{home}/mlflow/artifacts",
    )
    try:
        from tests.support.history import build_history

        history = build_history(START, days=12, train_after=6, bad_day=2, drift_from=9, rows=300)
        copied = replicate(home / "lake", history, args.days)
        from mlops.core.config import get_use_case
        from mlops.core.lake import get_lake
        from mlops.orchestration.ui import pages, records

        uc, lake = get_use_case("churn"), get_lake()
        today = START + dt.timedelta(days=args.days)
        pages.render(lake, uc, ["churn"], "overview", today)  # MLflow client and imports, once
        results = {}
        for name in pages.PAGES:
            roots = {"quality": ["raw", "validation"], "monitoring": ["reports", "predictions", "alerts"], "scoring": ["predictions"],
                     "overview": ["registry", "predictions", "reports", "alerts"], "promotions": ["registry"]}[name]  # fmt: skip
            records.CACHE.clear()
            started = time.perf_counter()
            pages.render(lake, uc, ["churn"], name, today)
            cold = time.perf_counter() - started
            render_s, baseline_s, size = [], [], 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                size = len(pages.render(lake, uc, ["churn"], name, today))
                render_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                for root in roots:
                    for path in (home / "lake" / root).rglob("*.json"):
                        json.loads(path.read_bytes())
                baseline_s.append(time.perf_counter() - started)
            r, b = statistics.median(render_s), statistics.median(baseline_s)
            results[name] = {"cold_s": round(cold, 4), "render_s": round(r, 4), "read_records_s": round(b, 4),
                             "ratio": round(r / b, 2) if b else None, "html_bytes": size}  # fmt: skip
            ratio = r / b if b else float("nan")
            print(f"{name:<11} cold {cold * 1000:8.1f} ms   warm {r * 1000:8.1f} ms   "
                  f"records {b * 1000:8.1f} ms   ratio {ratio:5.2f}   {size:,} bytes")  # fmt: skip
        out = {"days": args.days, "records_copied": copied, "repeat": args.repeat, "pages": results}
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "ui_pages.json").write_text(json.dumps(out, indent=2) + "\n")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def replicate(lake: Path, history: object, days: int) -> int:
    """Copy the per-day record folders of the history's days onto ``days`` consecutive days."""
    real = [d.isoformat() for d in history.days]  # type: ignore[attr-defined]
    copied = 0
    for kind in ("raw", "validation", "quarantine", "predictions", "reports"):
        base = lake / kind / "churn"
        if not base.exists():
            continue
        sources = sorted(p.name for p in base.iterdir() if p.name in real)
        for i in range(days):
            day = (START + dt.timedelta(days=i)).isoformat()
            if day in real or not sources:
                continue
            source = base / sources[i % len(sources)]
            target = base / day
            target.mkdir(parents=True, exist_ok=True)
            for file in source.rglob("*"):
                if file.is_dir():
                    continue
                data = file.read_bytes()
                if file.suffix == ".json":
                    data = data.replace(source.name.encode(), day.encode())
                dest = target / file.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                copied += 1
    return copied


if __name__ == "__main__":
    raise SystemExit(main())
