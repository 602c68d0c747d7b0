"""Drift check on a sample against Evidently on the full data: time, and how often they agree.

The drift task (``mlops.monitoring.drift.check_drift``) samples both sides to ``drift.sample_size`` rows
before running Evidently. This measures what that buys and what it risks, in one run:

* reference: ``--reference-rows`` (200k) churn feature rows, no drift;
* current sets of ``--current-rows`` (1M) feature rows each: one simulated day with no drift,
  borderline drift (a score near the threshold), mild and strong drift in one or two features
  (``mlops.dev.simulator.Drift``), and a broad drift of most features, so that the dataset-level
  verdict (drift_share 0.5 of 9 features) is exercised both ways;
* for each set, ``run_drift_report`` once on the full data (reference 200k vs current 1M) and
  once per seed on ``sample(frame, --sample-size, seed)`` of both sides, with the churn use
  case's features, stattests and ``drift_share``.

Reported: seconds per report (sampling included in the sampled variant), the time ratio
full / sampled, the dataset-drift verdict agreement rate and the per-feature drifted-flag
agreement rate over all (set, seed) pairs, and every disagreement with both scores. Evidently
(~10 s to import) is imported and run once on a small frame before any timing.

Run (from the project root; ~5-10 minutes at the default sizes on 2 cores)::

    .venv/bin/python bench/drift_sampling.py     # --current-rows 1000000 --sample-size 20000 --seeds 3
    .venv/bin/python bench/drift_sampling.py --current-rows 200000 --seeds 2   # quicker

Writes ``bench/results/drift_sampling.json``. Timings are never asserted anywhere.
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
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
USE_CASE = "churn"
REFERENCE_DAY = dt.date(2026, 2, 1)
CURRENT_DAY = dt.date(2026, 2, 15)  # every current set is this day's batch, drifted differently

# name -> (scale, shift) applied with mlops.dev.simulator.Drift from CURRENT_DAY on.
DRIFT_SETS: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "none (logins x1.0)": ({"logins_30d": 1.0}, {}),
    "borderline: logins x0.95": ({"logins_30d": 0.95}, {}),
    "mild: logins x0.9": ({"logins_30d": 0.9}, {}),
    "logins x0.7": ({"logins_30d": 0.7}, {}),
    "strong: logins x0.35": ({"logins_30d": 0.35}, {}),
    # Normed Wasserstein of monthly_charges is ~0.035 per +1 here; the default threshold is 0.1.
    "borderline: charges +2.7": ({}, {"monthly_charges": 2.7}),
    "borderline: charges +3": ({}, {"monthly_charges": 3.0}),
    "charges +10": ({}, {"monthly_charges": 10.0}),
    "two: logins x0.35, charges +45": ({"logins_30d": 0.35}, {"monthly_charges": 45.0}),
    "broad: 5 inputs, 6 features": (
        {"logins_30d": 0.35, "tenure_months": 0.5, "support_contacts_30d": 2.0, "avg_session_minutes": 1.5},
        {"monthly_charges": 45.0},
    ),
}


def peak_rss_mb() -> float:
    """Whole-process peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet() -> None:
    for name in ("evidently", "airflow", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


def features_for(use_case: Any, day: dt.date, rows: int, drift: Any) -> Any:
    from mlops.data.features import build_features
    from mlops.dev.simulator import simulate_batch

    return build_features(simulate_batch(USE_CASE, day, rows=rows, drift=drift), use_case)


def report(reference: Any, current: Any, use_case: Any) -> tuple[dict[str, Any], float]:
    from mlops.monitoring.drift import run_drift_report

    started = time.perf_counter()
    summary, _ = run_drift_report(
        reference,
        current,
        numeric=use_case.numeric_features,
        categorical=use_case.categorical_features,
        drift_share=use_case.drift.drift_share,
        stattests=dict(use_case.drift.stattests),
    )
    return summary, time.perf_counter() - started


def compact(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset_drift": bool(summary["dataset_drift"]),
        "drift_share": summary["drift_share"],
        "features": {
            name: {
                "drifted": bool(v["drifted"]),
                "score": v["score"],
                "method": v["method"],
                "threshold": v["threshold"],
            }
            for name, v in summary["features"].items()
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    import evidently  # noqa: F401  (~10 s to import; kept off the clock)
    import pandas  # noqa: F401

    from mlops.core.config import get_use_case
    from mlops.dev.simulator import Drift
    from mlops.monitoring.drift import sample

    import_seconds = time.perf_counter() - t0
    use_case = get_use_case(USE_CASE)
    print(f"imported Evidently and pandas in {import_seconds:.1f} s", flush=True)

    started = time.perf_counter()
    reference = features_for(use_case, REFERENCE_DAY, args.reference_rows, None)
    print(
        f"reference: {len(reference):,} feature rows of {REFERENCE_DAY} ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    # Evidently's first report pays lazy imports and caches: once on a small frame, off the clock.
    warm = sample(reference, 2000, 0)
    _, warm_seconds = report(warm, warm, use_case)

    sets = []
    for name, (scale, shift) in DRIFT_SETS.items():
        started = time.perf_counter()
        current = features_for(
            use_case, CURRENT_DAY, args.current_rows, Drift(start=CURRENT_DAY, scale=scale, shift=shift)
        )
        gen_seconds = time.perf_counter() - started
        full, full_seconds = report(reference, current, use_case)
        entry: dict[str, Any] = {
            "name": name,
            "scale": scale,
            "shift": shift,
            "current_rows": len(current),
            "generate_seconds": gen_seconds,
            "full": compact(full) | {"seconds": full_seconds, "reference_rows": len(reference)},
            "sampled": [],
        }
        for seed in range(args.seeds):
            started = time.perf_counter()
            ref_s = sample(reference, args.sample_size, seed)
            cur_s = sample(current, args.sample_size, seed)
            summary, _ = report(ref_s, cur_s, use_case)
            entry["sampled"].append(
                compact(summary) | {"seed": seed, "seconds": time.perf_counter() - started}
            )
        del current
        mean_sampled = sum(s["seconds"] for s in entry["sampled"]) / len(entry["sampled"])
        drifted = [f for f, v in entry["full"]["features"].items() if v["drifted"]]
        print(
            f"  {name:<32} full {full_seconds:6.2f} s, sampled {mean_sampled:5.2f} s;"
            f" full verdict {entry['full']['dataset_drift']!s:<5} drifted: {', '.join(drifted) or '-'}",
            flush=True,
        )
        sets.append(entry)
    return {"import_seconds": import_seconds, "warm_up_seconds": warm_seconds, "sets": sets}


def agreement(sets: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = dataset_agree = features_total = features_agree = 0
    disagreements = []
    for entry in sets:
        full = entry["full"]
        for s in entry["sampled"]:
            pairs += 1
            dataset_agree += s["dataset_drift"] == full["dataset_drift"]
            for feature, fv in full["features"].items():
                sv = s["features"][feature]
                features_total += 1
                if sv["drifted"] == fv["drifted"]:
                    features_agree += 1
                else:
                    disagreements.append(
                        {
                            "set": entry["name"],
                            "seed": s["seed"],
                            "feature": feature,
                            "full": {"drifted": fv["drifted"], "score": fv["score"], "method": fv["method"]},
                            "sampled": {
                                "drifted": sv["drifted"],
                                "score": sv["score"],
                                "method": sv["method"],
                            },
                            "threshold": fv["threshold"],
                        }
                    )
    full_seconds = sum(e["full"]["seconds"] for e in sets) / len(sets)
    sampled_seconds = sum(s["seconds"] for e in sets for s in e["sampled"]) / pairs
    return {
        "pairs": pairs,
        "dataset_verdict_agreement": dataset_agree / pairs,
        "dataset_verdict_agree_count": dataset_agree,
        "feature_flag_comparisons": features_total,
        "feature_flag_agreement": features_agree / features_total,
        "feature_flag_agree_count": features_agree,
        "mean_full_seconds": full_seconds,
        "mean_sampled_seconds": sampled_seconds,
        "time_ratio_full_to_sampled": full_seconds / sampled_seconds,
        "disagreements": disagreements,
    }


def print_table(sets: list[dict[str, Any]], agg: dict[str, Any], args: argparse.Namespace) -> None:
    head = (
        f"{'current set':<32} {'full s':>7} {'sampled s':>9} {'x faster':>8}  {'dataset drift full/sampled':<28}"
        f" {'drifted features (full)':>23} {'feature flags agree':>19}"
    )
    print(
        f"\nreference {args.reference_rows:,} rows vs current {args.current_rows:,} rows; sampled: {args.sample_size:,} rows a side, {args.seeds} seeds"
    )
    print(head)
    print("-" * len(head))
    for e in sets:
        mean_sampled = sum(s["seconds"] for s in e["sampled"]) / len(e["sampled"])
        verdicts = f"{e['full']['dataset_drift']!s} / " + ",".join(
            str(s["dataset_drift"]) for s in e["sampled"]
        )
        drifted = sum(v["drifted"] for v in e["full"]["features"].values())
        n_features = len(e["full"]["features"])
        agree = sum(
            s["features"][f]["drifted"] == v["drifted"]
            for s in e["sampled"]
            for f, v in e["full"]["features"].items()
        )
        total = n_features * len(e["sampled"])
        print(
            f"{e['name']:<32} {e['full']['seconds']:>7.2f} {mean_sampled:>9.2f} {e['full']['seconds'] / mean_sampled:>8.1f}"
            f"  {verdicts:<28} {f'{drifted} of {n_features}':>23} {f'{agree}/{total}':>19}"
        )
    print(
        f"\nfull / sampled time: {agg['time_ratio_full_to_sampled']:.1f}x"
        f" ({agg['mean_full_seconds']:.2f} s vs {agg['mean_sampled_seconds']:.2f} s per report)"
    )
    print(
        f"dataset verdict agreement: {agg['dataset_verdict_agree_count']}/{agg['pairs']} = {agg['dataset_verdict_agreement']:.1%}"
    )
    print(
        f"per-feature drifted-flag agreement: {agg['feature_flag_agree_count']}/{agg['feature_flag_comparisons']}"
        f" = {agg['feature_flag_agreement']:.1%}"
    )
    for d in agg["disagreements"]:
        print(
            f"  disagreement: {d['set']}, seed {d['seed']}, {d['feature']}: full {d['full']['score']:.4f}"
            f" ({d['full']['method']}) -> {d['full']['drifted']}, sampled {d['sampled']['score']:.4f}"
            f" ({d['sampled']['method']}) -> {d['sampled']['drifted']}; threshold {d['threshold']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--current-rows",
        type=int,
        default=1_000_000,
        help="feature rows in each current set (default 1000000)",
    )
    parser.add_argument(
        "--reference-rows", type=int, default=200_000, help="feature rows in the reference (default 200000)"
    )
    parser.add_argument(
        "--sample-size", type=int, default=20_000, help="rows per side in the sampled variant (default 20000)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="sampling seeds per current set (default 3)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.sample_size < 1000:
        parser.error("--seeds must be >= 1 and --sample-size >= 1000")

    home = tempfile.mkdtemp(prefix="bench-drift-")
    os.environ["MLOPS_HOME"] = home  # before any mlops settings are read
    from mlops.dev.embedded import apply_embedded_defaults  # light: only mlops.core.settings

    apply_embedded_defaults()
    _quiet()
    try:
        measured = run(args)
        agg = agreement(measured["sets"])
        print_table(measured["sets"], agg, args)
        payload = {
            "benchmark": "drift_sampling",
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
            },
            "args": vars(args),
            "peak_rss_mb": peak_rss_mb(),
            "load_avg": os.getloadavg(),
            **measured,
            "summary": agg,
        }
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / "drift_sampling.json"
        out.write_text(json.dumps(payload, indent=2))
        print(f"\nprocess peak RSS {payload['peak_rss_mb']:,.0f} MiB; wrote {out}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
