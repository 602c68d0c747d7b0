"""The main job: the platform running as a service on a simulated real feed, with a summary.

``make demo`` (``python -m mlops demo``) does what an operator's first weeks look like:

1. Lands the simulated upstream feeds for the last weeks up to yesterday: daily churn snapshots
   without labels (one of them broken), and a separate label feed whose labels arrive one to
   four days after their events (some later, some never). From ``CONCEPT_DAY`` on, the label
   relation changes (concept drift): the same inputs now mean a different churn risk.
2. Starts the embedded platform in the background (``mlops.dev.service``: scheduler, DAG
   processor, triggerer, API server; SQLite; LocalExecutor) with the demo's configuration: the
   shipped churn use case with its labels on their own feed, a start date weeks ago and catchup.
3. Lets the real scheduler run every scheduled day of the data and label DAGs (catchup).
4. Asks for the first model the way an upstream system does: a REST call to the training DAG.
5. Scores the days after the training window (REST), then lets the daily drift check run: it
   measures live performance per day on the labels that arrived, alerts on Slack (a local
   stand-in when none is configured; the story prints what it received) and triggers a retrain,
   which the scheduler runs through the same gate.
6. Checks drift again on the same day: the reference is now the new champion.

It prints the story and leaves the UI up; ``make stop`` stops what it started.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlops.core import layout

DAYS = 21
ROWS = 1500
BAD_DAY = 5  # index of the day whose batch is broken
TRAIN_DAY = 11  # the first model is trained on the labels known by the end of this day
CONCEPT_DAY = 12  # concept drift from this day on
BAD_KIND = "unknown_category"
DEMO_DAGS = ("churn_data", "churn_labels", "churn_training", "churn_scoring", "churn_drift")


def _say(msg: str = "") -> None:
    print(msg, flush=True)


class Api:
    """A small client of Airflow's REST API (``/api/v2``) with a bearer token."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        body = self._call("POST", "/auth/token", {"username": username, "password": password}, token=None)
        self.token = body["access_token"]

    def _call(self, method: str, path: str, body: Any = None, *, token: str | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/api/v2{path}", body, token=self.token)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self("GET", f"/dags/{dag_id}/dagRuns?limit=200&order_by=run_after")["dag_runs"])

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self(
                "POST", f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf}
            )
        )

    def unpause(self, *dag_ids: str) -> None:
        for dag_id in dag_ids:
            self("PATCH", f"/dags/{dag_id}", {"is_paused": False})


def _wait(what: str, done: Any, timeout: float = 900, every: float = 5) -> Any:
    started = time.monotonic()
    while True:
        result = done()
        if result:
            _say(f"  ... {what}: done in {time.monotonic() - started:.0f} s")
            return result
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"demo: {what} not done after {timeout:.0f} s; see the Airflow UI and $MLOPS_HOME/service/*.log"
            )
        time.sleep(every)


def _finished(runs: list[dict[str, Any]], count: int) -> bool:
    return len(runs) >= count and all(r["state"] in {"success", "failed"} for r in runs)


def demo_config(home: Path, start: dt.date) -> Path:
    """The demo's configuration: the shipped use cases, churn with its labels on their own feed."""
    import yaml

    from mlops.core.config import load_use_case_file
    from mlops.core.settings import project_root
    from mlops.data.validation import derive_suite, suite_path

    source = project_root() / "config"
    config = home / "demo" / "config"
    shutil.rmtree(config, ignore_errors=True)
    (config / "use_cases").mkdir(parents=True)
    churn = yaml.safe_load((source / "use_cases" / "churn.yaml").read_text())
    target = churn["schema"].pop("target")
    churn["schema"].pop("label_delay_days", None)
    label_type = churn["schema"]["columns"].pop(target)
    churn["labels"] = {
        "source": {"kind": "files", "format": "csv", "uri": "{landing}/churn_labels/{interval}.csv"},
        "entity": churn["schema"]["entity"],
        "event_time": churn["schema"]["event_time"],
        "label": target,
        "max_delay_days": 30,
        "columns": {
            churn["schema"]["entity"]: churn["schema"]["columns"][churn["schema"]["entity"]],
            churn["schema"]["event_time"]: {"type": "datetime"},
            target: label_type,
        },
    }
    churn["training"]["schedule"] = None  # first model on request (REST), later ones when drift asks
    churn["drift"]["schedule"] = "@daily"
    churn["drift"]["retrain_window_days"] = 7  # after drift, learn from the last week
    churn["schedules"] |= {"data": "@daily", "start_date": start.isoformat(), "catchup": True}
    (config / "use_cases" / "churn.yaml").write_text(yaml.safe_dump(churn, sort_keys=False))
    delivery = yaml.safe_load((source / "use_cases" / "delivery_time.yaml").read_text())
    delivery["schedules"]["paused_reason"] = (
        "no upstream feed is connected in the embedded demo; unpause once batches land at "
        "$MLOPS_LANDING_URI/delivery_time/<day>.parquet (python -m mlops simulate delivery_time ...)"
    )
    (config / "use_cases" / "delivery_time.yaml").write_text(yaml.safe_dump(delivery, sort_keys=False))
    for path in sorted((config / "use_cases").glob("*.yaml")):
        use_case = load_use_case_file(path)
        for feed in use_case.feeds:
            suite = suite_path(config, feed.stream)
            suite.parent.mkdir(parents=True, exist_ok=True)
            suite.write_text(json.dumps(derive_suite(feed), indent=2, sort_keys=True) + "\n")
    return config


def land_feeds(landing: Path, days: list[dt.date], rows: int) -> None:
    """The upstream systems' deliveries: unlabeled snapshots, and labels days later."""
    from mlops.dev.simulator import batch_bytes, delivered, make_batch_bytes, simulate_labels

    concept = days[CONCEPT_DAY]
    (landing / "churn").mkdir(parents=True, exist_ok=True)
    (landing / "churn_labels").mkdir(parents=True, exist_ok=True)
    for i, day in enumerate(days):
        bad = BAD_KIND if i == BAD_DAY else None
        data = make_batch_bytes("churn", day, "csv", rows=rows, bad=bad, concept=concept, with_labels=False)
        (landing / "churn" / f"{day.isoformat()}.csv").write_bytes(data)
        delivered(landing / "churn" / f"{day.isoformat()}.csv", day)
        labels = simulate_labels("churn", day, rows=rows, concept=concept)
        (landing / "churn_labels" / f"{day.isoformat()}.csv").write_bytes(batch_bytes(labels, "csv"))
        delivered(landing / "churn_labels" / f"{day.isoformat()}.csv", day)


def run_demo(days: int = DAYS, rows: int = ROWS) -> int:
    from mlops.core.settings import apply_env_defaults, home_default

    t0 = time.perf_counter()
    home = home_default()
    today = dt.datetime.now(dt.UTC).date()
    day_list = [today - dt.timedelta(days=days - i) for i in range(days)]
    from mlops.dev.service import config_record, pin_config_dir, service_for_settings

    service = service_for_settings()
    service.stop()  # a service left from an earlier run must not see its files vanish
    for sub in ("lake", "landing", "mlflow", "airflow", "demo"):
        shutil.rmtree(home / sub, ignore_errors=True)
    config_record(home).unlink(missing_ok=True)  # a new home: it runs the demo's config from now on
    config = demo_config(home, day_list[0])
    # The demo's own settings win over the embedded defaults (applied next).
    apply_env_defaults(
        {"MLOPS_CONFIG_DIR": str(config), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    )
    pin_config_dir(home, record=True)  # make stop / ui-airflow / serve use it after the demo
    from mlops.dev.embedded import apply_embedded_defaults

    apply_embedded_defaults()
    _say(
        f"[feeds] {days} days of churn snapshots ({rows} rows/day, no labels) from {day_list[0]} to {day_list[-1]};"
    )
    _say(
        f"        labels on their own feed, 1-4 days after each event (some late, some never); broken batch on {day_list[BAD_DAY]};"
    )
    _say(
        f"        concept drift from {day_list[CONCEPT_DAY]} (the label relation changes, the inputs do not)"
    )
    land_feeds(home / "landing", day_list, rows)

    slack = _slack_for_the_demo()
    _say(f"[service] starting Airflow (scheduler, dag-processor, triggerer, API server) at {service.url}")
    try:
        service.start()
        _story(service, day_list, today, t0)
    finally:
        if slack is not None:
            _show_slack(slack)
            slack.stop()
    return 0


def _slack_for_the_demo() -> Any:
    """With no Slack configured, a local stand-in (``mlops.dev.slack_standin``) takes the alerts
    through slack-sdk as Slack would, so the demo can print them; with ``MLOPS_SLACK_WEBHOOK_URL``
    (or the ``mlops_slack`` connection in the environment) set, alerts go to Slack for real. The
    stand-in stops with the demo: alerts after it wait in the outbox until Slack is configured."""
    from mlops.core.settings import connection_in_environment, load_settings, set_environment
    from mlops.dev.slack_standin import SlackStandin

    settings = load_settings()
    if settings.slack_webhook_url or connection_in_environment(settings.slack_conn_id):
        _say("[slack] alerts go to the Slack you configured")
        return None
    slack = SlackStandin().start()
    set_environment({"MLOPS_SLACK_WEBHOOK_URL": slack.webhook_url})  # the service's processes inherit it
    _say(f"[slack] no Slack configured: a local stand-in takes the alerts at {slack.base_url}")
    return slack


def _show_slack(slack: Any) -> None:
    """Each alert as the Slack stand-in received it: its text, then the text of its blocks."""
    from mlops.dev.slack_standin import block_texts

    _say(f"Slack (local stand-in) received {len(slack.messages)} message(s):")
    for message in slack.messages:
        _say(f"  > {message.text}")
        for text in block_texts(message.blocks or []):
            _say(f"    | {text}")


def _story(service: Any, day_list: list[dt.date], today: dt.date, t0: float) -> None:
    """The demo's runs, from the service's start to the summary."""
    from mlops.core.lake import get_lake
    from mlops.dev.service import USER

    days = len(day_list)
    api = Api(service.url, USER, service.password())
    _wait("DAGs parsed", lambda: all(_dag_exists(api, d) for d in DEMO_DAGS), timeout=300)

    _say(
        f"[schedule] catchup: the scheduler runs churn_data and churn_labels for each day {day_list[0]}..{day_list[-1]}"
    )
    api.unpause("churn_data", "churn_labels")
    _wait(
        f"{days} data runs and {days} label runs",
        lambda: _finished(api.runs("churn_data"), days) and _finished(api.runs("churn_labels"), days),
        timeout=1500,
    )

    train_day = day_list[TRAIN_DAY]
    _say(
        f"[rest] an upstream system asks for the first model: POST /api/v2/dags/churn_training/dagRuns (interval {train_day})"
    )
    api.unpause("churn_training")
    first = api.trigger(
        "churn_training",
        f"upstream__initial-model-{train_day}",
        {"interval": train_day.isoformat(), "reason": "initial model", "request_id": "initial-model"},
    )
    _wait(
        "first training run",
        lambda: _state(api, "churn_training", first["dag_run_id"]) in {"success", "failed"},
    )

    to_score = day_list[TRAIN_DAY + 1 :]
    _say(f"[scoring] scoring the {len(to_score)} days after the training window with the champion")
    api.unpause("churn_scoring")
    scoring = api.trigger(
        "churn_scoring",
        f"upstream__score-backlog-{to_score[-1]}",
        {"intervals": [d.isoformat() for d in to_score]},
    )
    _wait("scoring run", lambda: _state(api, "churn_scoring", scoring["dag_run_id"]) in {"success", "failed"})

    _say(f"[drift] the daily drift check runs for {day_list[-1]}: live performance per day as labels arrive")
    _same_day(today)
    api.unpause("churn_drift")
    _wait(
        "scheduled drift check",
        lambda: _same_day(today) and _finished(api.runs("churn_drift"), 1),
        timeout=600,
    )
    _wait(
        "drift-triggered retrain",
        lambda: (
            _same_day(today)
            and _finished([r for r in api.runs("churn_training") if r["dag_run_id"].startswith("drift__")], 1)
        ),
        timeout=900,
    )
    lake = get_lake()
    first_check = lake.read_json(layout.drift_summary("churn", day_list[-1]))
    again = api.trigger(
        "churn_drift", f"manual__recheck-{day_list[-1]}", {"interval": day_list[-1].isoformat()}
    )
    _wait(
        "drift check against the new champion",
        lambda: _state(api, "churn_drift", again["dag_run_id"]) in {"success", "failed"},
    )

    _summary(api, lake, day_list, service, first_check, time.perf_counter() - t0)


def _same_day(today: dt.date) -> bool:
    """The demo's feeds end yesterday; once midnight UTC passes, the scheduler runs the new day
    (whose batch was never landed) and checks drift on it, so the story no longer holds."""
    now = dt.datetime.now(dt.UTC).date()
    if now != today:
        raise RuntimeError(
            f"demo: the UTC day changed during the demo ({today} -> {now}); its simulated feeds end on "
            f"{today - dt.timedelta(days=1)}, and the scheduler now runs {now - dt.timedelta(days=1)}, "
            "which has no batch. Run `make demo` again: it lands the feeds anew"
        )
    return True


def _dag_exists(api: Api, dag_id: str) -> bool:
    try:
        api("GET", f"/dags/{dag_id}")
    except urllib.error.HTTPError:
        return False
    return True


def _state(api: Api, dag_id: str, run_id: str) -> str:
    return str(api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])


def _summary(
    api: Api, lake: Any, days: list[dt.date], service: Any, first_check: dict[str, Any], elapsed: float
) -> None:
    from mlops.model.evidence import threshold_text
    from mlops.model.registry import promotion_history

    name = "churn"
    data_runs = api.runs("churn_data")
    scheduled = [r for r in data_runs if r["run_type"] == "scheduled"]
    ok = [r for r in scheduled if r["state"] == "success"]
    _say("")
    _say("=" * 78)
    _say(f"MLOps demo: use case '{name}' as a service ({elapsed / 60:.1f} min)")
    _say("=" * 78)
    _say(
        f"Scheduled data runs: {len(scheduled)} days {days[0]}..{days[-1]}, {len(ok)} succeeded; each archived its own day:"
    )
    archived = [
        lake.read_json(layout.raw_manifest(name, d))["interval"]
        for d in days
        if lake.exists(layout.raw_manifest(name, d))
    ]
    _say(
        f"  raw/{name}/<day>/ holds {len(archived)} batches, one per scheduled day ({archived[0]} .. {archived[-1]})"
    )
    for day in lake.list(layout.quarantine_root(name)):
        reason = lake.read_json(layout.quarantine_reason(name, day))
        _say(f"  quarantined {day}: {reason['errors'][0]['text']}")
    label_runs = [r for r in api.runs("churn_labels") if r["state"] == "success"]
    _say(
        f"Label deliveries stored: {len(label_runs)} days (labels of events 1-4 days earlier; some late, some never)"
    )
    _say("Promotion history:")
    for entry in promotion_history(lake, name):
        metric = entry.get("metric") or ""
        value = (entry.get("challenger_metrics") or {}).get(metric)
        shown = f" {metric}={value:.4f}" if value is not None else ""
        _say(
            f"  v{entry['version']}: {entry['outcome'].upper()}{shown} ({entry['airflow_run_id']}) - {entry['reason']}"
        )
        if entry.get("decision_threshold"):
            _say(f"      decision threshold {threshold_text(entry)}")
    preds = lake.list(layout.predictions_root(name))
    total = sum(lake.read_json(layout.predictions_manifest(name, d))["rows"] for d in preds)
    _say(
        f"Predictions: {total:,} rows for {len(preds)} days ({preds[0]} .. {preds[-1]}), scored before any of their labels existed"
    )
    summaries = (
        [lake.read_json(layout.drift_summary(name, days[-1]))]
        if lake.exists(layout.drift_summary(name, days[-1]))
        else []
    )
    if first_check:
        perf = first_check.get("performance")
        baseline = f" (v{first_check['model_version']} on its holdout: {perf['holdout']:.4f})" if perf else ""
        _say(f"Drift check of {first_check['day']}: live performance per day as labels arrived{baseline}")
        for entry in first_check.get("performance_by_day", []):
            shown = (
                f"{entry['metric']} {entry['value']:.4f}"
                if entry["value"] is not None
                else "too few labels yet"
            )
            _say(f"    {entry['day']}: {shown} on {entry['rows']} labelled predictions")
        _say(
            f"  verdict: {'DRIFT' if first_check['drifted'] else 'no drift'} - {'; '.join(first_check['reasons']) or 'nothing to report'}"
        )
    for rel in lake.children(layout.alert_box(name, "sent"), ".json"):
        record = lake.read_json(rel)
        _say(f"Alert ({record['delivered_to']}): {record['text']}")
    retrains = [r for r in api.runs("churn_training") if r["dag_run_id"].startswith("drift__")]
    for run in retrains:
        _say(f"Retrain triggered by drift, run by the scheduler: {run['dag_run_id']} -> {run['state']}")
    if summaries:
        _say(f"Drift reference now: champion v{summaries[0]['model_version']} (re-check of {days[-1]})")
    _say("")
    _say(f"Airflow UI: {service.url}  (user 'admin', password: {service.password()})")
    _say("  the password is kept in $MLOPS_HOME/service/passwords.json; MLflow UI: make ui-mlflow")
    _say("Stop everything this started: make stop")
