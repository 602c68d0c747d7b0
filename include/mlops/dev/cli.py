"""``python -m mlops``: suites (regenerate GX suites from config), check (a use-case change before it
merges), simulate (land upstream batches), demo, serve."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys


def _cmd_suites(args: argparse.Namespace) -> int:
    from mlops.core.config import load_use_cases
    from mlops.core.settings import load_settings
    from mlops.data.validation import derive_suite, suite_path

    settings = load_settings()
    good, bad = load_use_cases(settings.config_dir)
    for use_case in good.values():
        for feed in use_case.feeds:
            path = suite_path(settings.config_dir, feed.stream)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(derive_suite(feed), indent=2, sort_keys=True) + "\n"
            if args.check:
                if not path.exists() or path.read_text() != text:
                    print(
                        f"{path} is out of date with use_cases/{use_case.name}.yaml; run `python -m mlops suites`"
                    )
                    return 1
            else:
                path.write_text(text)
                print(f"wrote {path}")
    for err in bad.values():
        print(f"error: {err}", file=sys.stderr)
    return 1 if bad else 0


def _cmd_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops.core.settings import load_settings
    from mlops.dev.check import CheckError, CheckOptions, render_report, run_checks

    if (
        args.smoke_child
    ):  # the smoke run's child process (mlops.dev.smoke): its environment is the scratch home
        from mlops.dev.smoke import smoke_child

        return smoke_child(args.smoke_child, Path(args.smoke_cache) if args.smoke_cache else None)
    settings = load_settings()
    options = CheckOptions(
        config_dir=Path(args.config_dir).resolve() if args.config_dir else settings.config_dir,
        feature_repo=settings.feature_repo,
        since=args.since,
        expect_retrain=args.expect_retrain,
        smoke=not args.no_smoke,
        cache_dir=settings.home / "cache" / "check",
    )
    try:
        checks = run_checks(args.use_cases, options)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = render_report(checks, since=args.since)
    if args.report:
        Path(args.report).write_text(report)
    print(report)
    return 1 if any(c.failed for c in checks) else 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from airflow.sdk import ObjectStoragePath

    from mlops.core.config import get_use_case
    from mlops.core.settings import load_settings
    from mlops.data.ingest import source_uri
    from mlops.dev.simulator import DEFAULT_DRIFT, Drift, delivered, make_batch_bytes

    settings = load_settings()
    use_case = get_use_case(args.use_case, settings.config_dir)
    start = dt.date.fromisoformat(args.start)
    drift = None
    if args.drift_from:
        drift = Drift(start=dt.date.fromisoformat(args.drift_from), **DEFAULT_DRIFT[args.use_case])
    for i in range(args.days):
        day = start + dt.timedelta(days=i)
        data = make_batch_bytes(
            args.use_case, day, use_case.source.format, rows=args.rows, drift=drift, bad=args.bad
        )
        path = ObjectStoragePath(source_uri(use_case, day, settings.landing_uri))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        delivered(path, day)
        print(f"landed {len(data)} bytes at {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlops.dev.demo import run_demo

    return run_demo(days=args.days, rows=args.rows)


def _cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from mlops.dev.embedded import apply_embedded_defaults

    apply_embedded_defaults()
    from mlops.core.settings import load_settings

    settings = load_settings()
    if args.which == "airflow":
        return _cmd_service(argparse.Namespace(action="start"))
    print(f"MLflow UI on http://localhost:{args.port} (registry: Models tab)")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--port",
        str(args.port),
    ]
    return subprocess.call(cmd)


def _cmd_service(args: argparse.Namespace) -> int:
    from mlops.dev.embedded import apply_embedded_defaults

    apply_embedded_defaults()
    from mlops.dev.service import USER, service_for_settings

    service = service_for_settings()
    if args.action == "start":
        service.start()
        print(
            f"Airflow is up at {service.url} - log in as {USER!r} with the password in {service.run_dir / 'passwords.json'}"
        )
        print("Stop it with: make stop   (or: python -m mlops service stop)")
    elif args.action == "stop":
        stopped = service.stop()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    else:
        print(json.dumps(service.status(), indent=2))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlops.core.settings import apply_env_defaults
    from mlops.dev.embedded import apply_embedded_defaults

    # Each fills in only what is unset, so the production stack's variables win. A server logs
    # what it does (each model swap, each request-log batch) at INFO. One OpenMP thread per
    # prediction: requests already run in parallel threads, and OpenMP threads spinning against
    # them put the p99 latency of a 1-row request at 0.75 s instead of 40 ms on 2 busy cores
    # (bench/serving_latency.py).
    apply_env_defaults({"AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO", "OMP_NUM_THREADS": "1"})
    apply_embedded_defaults()
    from mlops.core.config import ConfigError
    from mlops.serving.app import serve

    try:
        serve(args.use_case, host=args.host, port=args.port)
    except ConfigError as exc:  # an unknown or invalid use case: nothing was started
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("suites", help="regenerate config/expectations/*.json from the use-case configs")
    p.add_argument("--check", action="store_true", help="fail if a stored suite differs from its config")
    p.set_defaults(func=_cmd_suites)
    p = sub.add_parser(
        "check", help="check use cases (a change to them or their feature code) before they merge"
    )
    p.add_argument(
        "use_cases",
        nargs="*",
        metavar="USE_CASE",
        help="use cases to check (default: changed since --since, else all)",
    )
    p.add_argument("--since", metavar="GIT_REF", help="check the use cases a change since this ref touches")
    p.add_argument(
        "--report", metavar="FILE.md", help="also write the markdown report here (a pull-request comment)"
    )
    p.add_argument(
        "--config-dir", metavar="DIR", help="the config folder (default: MLOPS_CONFIG_DIR or config/)"
    )
    p.add_argument(
        "--expect-retrain",
        action="store_true",
        help="the change means to retrain: a feature or column the production champion reads may go (a warning)",
    )
    p.add_argument(
        "--no-smoke", action="store_true", help="skip the smoke run of the DAGs (static checks only)"
    )
    p.add_argument("--smoke-child", metavar="USE_CASE", help=argparse.SUPPRESS)
    p.add_argument("--smoke-cache", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("simulate", help="land simulated upstream batches in the landing location")
    p.add_argument("use_case")
    p.add_argument("--start", required=True)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--drift-from", default=None)
    p.add_argument("--bad", default=None)
    p.set_defaults(func=_cmd_simulate)
    p = sub.add_parser("demo", help="run the whole loop on the embedded default and print a summary")
    p.add_argument("--days", type=int, default=21)
    p.add_argument("--rows", type=int, default=1500)
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser(
        "service", help="start, stop or show the embedded Airflow service (scheduler, API server, ...)"
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_cmd_service)
    p = sub.add_parser("ui", help="open the Airflow or MLflow UI on what the embedded default produced")
    p.add_argument("which", choices=["airflow", "mlflow"])
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=_cmd_ui)
    p = sub.add_parser(
        "serve", help="serve the champion of use cases over HTTP (POST /v1/<use case>/predict)"
    )
    p.add_argument("--use-case", action="append", required=True, help="a use case to serve (repeat for more)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 in a container)"
    )
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=_cmd_serve)
    args = parser.parse_args(argv)
    if args.command in HOME_COMMANDS and HOME_COMMANDS[args.command](args):
        from mlops.core.settings import home_default
        from mlops.dev.service import HomeConfigError, pin_config_dir

        try:
            pin_config_dir(home_default(), record=True)
        except HomeConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return int(args.func(args))


# Commands that start a home's service or serve its models: they run the config folder the home
# was first started with, and record it on a first start (mlops.dev.service.pin_config_dir). The
# demo makes its home anew and records its own; stopping is never refused.
HOME_COMMANDS = {
    "service": lambda args: args.action == "start",
    "ui": lambda args: args.which == "airflow",
    "serve": lambda args: True,
}
