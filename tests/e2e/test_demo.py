"""The README's first command, `python -m mlops demo`, tells the whole story with the real scheduler.

Run in a home of its own (clean environment, its own port): it must end with the service up,
every scheduled day archived once, the bad day quarantined, a first champion requested over
REST, unlabeled days scored, live performance measured per day as labels arrive, one alert, a
drift-triggered retrain promoted by the gate, and the drift reference on the new champion. Then
``service stop`` stops everything.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.lake import Lake
from mlops.dev.demo import TRAIN_DAY
from mlops.dev.slack_standin import SlackStandin
from tests.integration.stack import free_port
from tests.support.service import RunningService, clean_env, wait_out_midnight

pytestmark = [pytest.mark.slow, pytest.mark.service]


# Secrets planted where a careless platform would leak them: the Slack webhook's path and a
# connection's password. After the whole demo, neither may appear in any file it wrote.
WEBHOOK_SECRET = "WEBHOOKSECRET" + secrets.token_hex(8)
CONN_SECRET = "CONNSECRET" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    # The demo's story happens within one UTC day (its feeds end yesterday; it stops with a clear
    # error when the day changes under it), and it takes about ten minutes.
    wait_out_midnight(dt.timedelta(minutes=16))
    home = tmp_path_factory.mktemp("demo-home")
    port = free_port()
    with SlackStandin(token="xoxb-test", webhook_path=f"/services/T000/B000/{WEBHOOK_SECRET}") as slack:
        env = clean_env(
            {
                "MLOPS_HOME": str(home),
                "MLOPS_SERVICE_PORT": str(port),
                "MLOPS_SLACK_WEBHOOK_URL": slack.webhook_url,
                "AIRFLOW_CONN_UPSTREAM_DB": json.dumps(
                    {"conn_type": "postgres", "login": "etl", "password": CONN_SECRET, "host": "127.0.0.1"}
                ),
            }
        )
        svc = RunningService(home=home, env=env, port=port)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mlops", "demo"],
                env=env,
                capture_output=True,
                text=True,
                timeout=1500,
                cwd=home,
            )
            yield svc, done, slack
        finally:
            svc.cli("service", "stop")


def test_demo_tells_the_story(demo) -> None:
    svc, done, slack = demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    lake = Lake(f"file://{svc.home / 'lake'}")
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=21 - i) for i in range(21)]

    # Every scheduled day archived its own batch; the broken one is quarantined with its reason.
    assert lake.list(layout.raw_root("churn")) == [d.isoformat() for d in days]
    [quarantined] = lake.list(layout.quarantine_root("churn"))
    reason = lake.read_json(layout.quarantine_reason("churn", quarantined))
    assert "expect_column_values_to_be_in_set" in reason["errors"][0]["text"]
    assert f"quarantined {quarantined}" in out

    # The first model was requested over REST; the drift-triggered retrain won on recent labels.
    history = [lake.read_json(rel) for rel in lake.children(layout.promotions_dir("churn"), ".json")]
    assert [(h["version"], h["outcome"]) for h in history] == [("1", "promoted"), ("2", "promoted")]
    assert history[0]["airflow_run_id"].startswith("upstream__")
    assert history[1]["airflow_run_id"].startswith("drift__") and "beats champion" in history[1]["reason"]
    # v1 catches churners at the threshold chosen for it on validation (f1), and its evidence
    # pack (JSON and HTML) is in the lake, linked from its record.
    first = history[0]["decision_threshold"]
    assert first is not None and first["objective"] == "f1" and first["recall"] > 0, first
    assert "decision threshold" in out
    for key in ("evidence_uri", "evidence_html_uri"):
        assert history[0].get(key), history[0]

    # Unlabeled days were scored; labels arrived later and were measured per day. The days after
    # the first model's window were scored by v1 when they were asked for, and the new champion
    # left that record alone; the feature events of the earlier days, waiting while scoring was
    # paused, were scored by the first scoring run they started (v2's promotion).
    predicted = lake.list(layout.predictions_root("churn"))
    assert predicted == [d.isoformat() for d in days if d.isoformat() != quarantined]
    made_by = {d: lake.read_json(layout.predictions_manifest("churn", d))["model_version"] for d in predicted}
    after_first_window = [d.isoformat() for d in days[TRAIN_DAY + 1 :]]
    assert [made_by[d] for d in after_first_window] == ["1"] * len(after_first_window) == ["1"] * 9
    alerts = [lake.read_json(rel) for rel in lake.children(layout.alert_box("churn", "sent"), ".json")]
    assert (
        len(alerts) == 1 and alerts[0]["delivered_to"].startswith("slack") and "fell to" in alerts[0]["text"]
    )
    texts = [m.text or "" for m in slack.messages]
    drift = [t for t in texts if t.startswith("Drift detected")]
    failures = [t for t in texts if t.startswith("Airflow run failed")]
    assert len(drift) == 1 and "fell to" in drift[0]  # one drift alert, no storm
    assert (
        len(failures) == 1 and "churn_data" in failures[0] and "validate_batch" in failures[0]
    )  # the quarantine
    assert len(texts) == 2
    assert "labelled predictions" in out and "DRIFT" in out

    # The re-check runs against the new champion: the reference moved.
    recheck = lake.read_json(layout.drift_summary("churn", days[-1]))
    assert recheck["model_version"] == "2"

    # The UI is left up with its login; `service stop` stops all of it.
    assert f"Airflow UI: {svc.url}" in out and "user 'admin'" in out
    status = json.loads(svc.cli("service", "status").stdout)
    assert status["healthy"] is True
    assert svc.cli("service", "stop").returncode == 0
    after = json.loads(svc.cli("service", "status").stdout)
    assert after["healthy"] is False and all(pid is None for pid in after["components"].values())


def test_no_planted_secret_appears_anywhere_the_platform_wrote(demo) -> None:
    """Task logs, service logs, XCom and run conf (the Airflow DB), MLflow params, tags and
    artifacts, the lake (alerts, reports, manifests), and what the demo printed."""
    svc, done, _ = demo
    leaks = []
    for path in svc.home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            leaks += [
                f"{path}: {name}"
                for name, value in (("webhook", WEBHOOK_SECRET), ("connection", CONN_SECRET))
                if value.encode() in content
            ]
    for name, value in (("webhook", WEBHOOK_SECRET), ("connection", CONN_SECRET)):
        if value in done.stdout + done.stderr:
            leaks.append(f"demo output: {name}")
    assert leaks == []


def test_demo_leaves_no_secret_in_the_checkout(demo) -> None:
    svc, _, _ = demo
    secrets_dir = svc.home / "service"
    assert (secrets_dir / "passwords.json").stat().st_mode & 0o077 == 0
    root = Path(__file__).resolve().parents[2]
    password = json.loads((secrets_dir / "passwords.json").read_text())["admin"]
    tracked = subprocess.run(["git", "grep", "-l", password], cwd=root, capture_output=True, text=True)
    assert tracked.stdout == ""


def test_after_the_demo_make_ui_airflow_runs_the_same_dags_and_leaves_the_registry_alone(demo) -> None:
    """`make demo`, `make stop`, then `make ui-airflow` from a shell that names no config folder:
    the home runs the demo's use cases again (its label feed's DAG too), and two minutes of the
    scheduler change nothing in the registry."""
    import time

    from mlflow import MlflowClient

    from mlops.core.config import load_use_cases

    svc, done, _ = demo
    assert done.returncode == 0
    svc.cli("service", "stop")
    client = MlflowClient(tracking_uri=f"sqlite:///{svc.home / 'mlflow' / 'mlflow.db'}")

    def registry() -> tuple[list[tuple[str, str, str]], str]:
        versions = client.search_model_versions("name='churn_model'")
        return (
            sorted((v.version, v.current_stage, v.run_id) for v in versions),
            client.get_model_version_by_alias("churn_model", "champion").version,
        )

    before = registry()
    assert "MLOPS_CONFIG_DIR" not in svc.env
    started = svc.cli("ui", "airflow")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        svc.login()
        good, _ = load_use_cases(svc.home / "demo" / "config")
        expected = {f"{name}_{kind}" for name in good for kind in ("data", "training", "scoring", "drift")}
        expected.add("churn_labels")  # only the demo's config has churn's label feed

        def listed() -> set[str]:
            dags = svc.api("GET", "/dags", params={"limit": 100}).json()["dags"]
            return {d["dag_id"] for d in dags}

        svc.wait("the demo's DAGs parsed again", lambda: expected <= listed(), 240)
        time.sleep(120)
        assert expected <= listed()
        assert registry() == before
    finally:
        svc.cli("service", "stop")
