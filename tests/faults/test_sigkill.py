"""Each side effect's task killed with SIGKILL at its worst moment, then retried.

A task runs in a child process (``tests/faults/child.py``) with ``MLOPS_FAULT_POINT`` naming one
point of ``mlops.core.faults``; the child dies there with SIGKILL, as under the OOM killer or a
lost node: no ``finally``, no exception handler, no cleanup. Then the normal retry runs, and the
test checks what a reader sees in between (nothing half-visible), and after: nothing lost, no
duplicate, outputs byte-identical to an undisturbed run, production never without a champion.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlops.core import faults, layout
from mlops.core.alerts import CLAIM_LEASE, SlackTarget, deliver_pending, drift_alert, enqueue
from mlops.core.config import get_use_case
from mlops.core.lake import Lake, get_lake
from mlops.core.settings import load_settings
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.ingest import BatchMissing, read_manifest, verify_archived
from mlops.data.tasks import BatchRejected, extract_and_archive, materialize_features, validate_batch
from mlops.dev.slack_standin import SlackStandin
from mlops.model import registry
from mlops.model.gate import evaluate_and_promote
from mlops.model.registration import train_and_register
from mlops.model.scoring import read_predictions, score_partition
from mlops.model.training_set import prepare_training_set
from mlops.monitoring.retrain import decide_and_record
from tests.e2e.helpers import land
from tests.support.fixtures import slack_standin_fixture  # noqa: F401

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]
DAYS = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(7)]
NEW_DAY = dt.date(2026, 9, 8)
TRAIN_DAY = DAYS[-1]
HOME_VARIABLES = (
    "MLOPS_HOME",
    "MLFLOW_TRACKING_URI",
    "MLOPS_MLFLOW_ARTIFACTS_URI",
    "MLOPS_FAULT_POINT",
    "MLOPS_SLACK_WEBHOOK_URL",
)


@contextmanager
def platform_home(home: Path) -> Iterator[Path]:
    """Point the platform (this process and its children) at ``home``, as ``fresh_home`` does."""
    saved = {name: os.environ.get(name) for name in HOME_VARIABLES}
    os.environ.update(
        MLOPS_HOME=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow/mlflow.db",
        MLOPS_MLFLOW_ARTIFACTS_URI=f"file://{home}/mlflow/artifacts",
    )
    os.environ.pop("MLOPS_FAULT_POINT", None)
    os.environ.pop("MLOPS_SLACK_WEBHOOK_URL", None)
    try:
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with seven days archived, validated and materialized, and an eighth day landed."""
    home = tmp_path_factory.mktemp("seed")
    with platform_home(home):
        uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
        for day in DAYS:
            land("churn", day, rows=500)
            extract_and_archive(uc, day, lake, settings.landing_uri)
            validate_batch(uc, day, lake, settings.config_dir)
            materialize_features(uc, day, lake, ParquetFeatureStore(lake))
        land("churn", NEW_DAY, rows=500)
    return home


@pytest.fixture
def home(seed: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the seed (no MLflow state yet), made the platform's home for the test."""
    copy = tmp_path / "home"
    shutil.copytree(seed, copy)
    with platform_home(copy):
        yield copy


def killed(step: str, point: str, args: dict[str, Any], tmp: Path) -> None:
    """Run ``step`` in a child process that must die with SIGKILL at fault point ``point``."""
    assert point in faults.POINTS
    arguments = tmp / f"{step}-{point}.json"
    arguments.write_text(json.dumps(args, default=str))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.child", step, str(arguments)],
        env=os.environ | {"MLOPS_FAULT_POINT": point}, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (
        f"{step} did not die at {point!r} (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


def files(lake: Lake, rel: str) -> dict[str, bytes]:
    """Every file under ``rel`` (hidden temporaries included: a crash may leave them), with its bytes."""
    root = Path(lake.path(rel).path)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


# Data: archive, quarantine, materialize -------------------------------------------------------


def test_archive_killed_before_its_manifest(home: Path, tmp_path: Path) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    undisturbed = extract_and_archive(uc, NEW_DAY, lake, settings.landing_uri)
    expected = files(lake, layout.raw_dir("churn", NEW_DAY))
    lake.delete(layout.raw_dir("churn", NEW_DAY))

    killed("archive", "archive", {"day": NEW_DAY.isoformat()}, tmp_path)
    # The object is in place under its hash, but no reader sees the day: the manifest is the pointer.
    with pytest.raises(BatchMissing):
        read_manifest(lake, "churn", NEW_DAY)

    retried = extract_and_archive(uc, NEW_DAY, lake, settings.landing_uri)
    assert without(retried, "received_at") == without(undisturbed, "received_at")
    after = files(lake, layout.raw_dir("churn", NEW_DAY))
    assert after.keys() == expected.keys()  # one object, one manifest, no leftovers
    object_name = f"{undisturbed['sha256']}.csv"
    assert after[object_name] == expected[object_name]
    assert read_manifest(lake, "churn", NEW_DAY)["sha256"] == undisturbed["sha256"]
    verify_archived(lake, read_manifest(lake, "churn", NEW_DAY))


def test_quarantine_killed_before_its_reason(home: Path, tmp_path: Path) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    land("churn", NEW_DAY, rows=500, bad="out_of_range")
    extract_and_archive(uc, NEW_DAY, lake, settings.landing_uri)
    with pytest.raises(BatchRejected) as undisturbed_error:
        validate_batch(uc, NEW_DAY, lake, settings.config_dir)
    expected = files(lake, layout.quarantine_dir("churn", NEW_DAY))
    lake.delete(layout.quarantine_dir("churn", NEW_DAY))
    lake.delete(layout.validation_dir("churn", NEW_DAY))

    killed("validate", "quarantine", {"day": NEW_DAY.isoformat()}, tmp_path)
    assert not lake.exists(layout.quarantine_reason("churn", NEW_DAY))  # not marked quarantined yet...
    with pytest.raises(BatchRejected):  # ...and not usable either: features refuse the day
        materialize_features(uc, NEW_DAY, lake, ParquetFeatureStore(lake))

    with pytest.raises(BatchRejected) as retried_error:
        validate_batch(uc, NEW_DAY, lake, settings.config_dir)
    assert str(retried_error.value) == str(undisturbed_error.value)
    after = files(lake, layout.quarantine_dir("churn", NEW_DAY))
    assert after.keys() == expected.keys()
    batch = next(name for name in expected if name.startswith("batch"))
    assert after[batch] == expected[batch]  # the rejected bytes, unmodified
    reason, expected_reason = json.loads(after["reason.json"]), json.loads(expected["reason.json"])
    assert without(reason, "validated_at", "run_time") == without(expected_reason, "validated_at", "run_time")
    assert set(ParquetFeatureStore(lake).partitions("churn")) == set(DAYS)


def test_materialize_killed_before_its_manifest(home: Path, tmp_path: Path) -> None:
    uc, lake, settings = get_use_case("churn"), get_lake(), load_settings()
    store = ParquetFeatureStore(lake)
    extract_and_archive(uc, NEW_DAY, lake, settings.landing_uri)
    validate_batch(uc, NEW_DAY, lake, settings.config_dir)
    undisturbed = materialize_features(uc, NEW_DAY, lake, store)
    committed = store.committed_files("churn", NEW_DAY)
    assert set(committed) == {"features", "labels"}
    partition = {kind: lake.read_bytes(path) for kind, path in committed.items()}
    for path in committed.values():
        lake.delete(path)
    lake.delete(layout.feature_manifest("churn", NEW_DAY))

    killed("materialize", "materialize", {"day": NEW_DAY.isoformat()}, tmp_path)
    assert all(lake.exists(path) for path in committed.values())  # the files are in place...
    assert NEW_DAY not in store.partitions("churn")  # ...but no reader sees them
    assert store.read_features("churn", NEW_DAY, NEW_DAY).empty

    assert materialize_features(uc, NEW_DAY, lake, store) == undisturbed
    after = store.committed_files("churn", NEW_DAY)
    assert {kind: lake.read_bytes(path) for kind, path in after.items()} == partition
    assert len(store.read_features("churn", NEW_DAY, NEW_DAY)) == undisturbed["rows"]


# Model: register, promote, score ----------------------------------------------------------------


def _training_set(run_id: str) -> Any:
    lake = get_lake()
    return prepare_training_set(get_use_case("churn"), TRAIN_DAY, lake, ParquetFeatureStore(lake), run_id)


def _versions() -> list[int]:
    client = registry.configure_mlflow()
    return sorted(int(v.version) for v in client.search_model_versions("name = 'churn_model'"))


def test_register_killed_before_its_tags(
    home: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = "scheduled__2026-09-07T00:00:00+00:00"
    manifest = _training_set(run)
    killed("train", "register", {"manifest": manifest, "run_id": run}, tmp_path)
    assert _versions() == [1]

    uc, lake = get_use_case("churn"), get_lake()
    retried = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id=run,
        reason="fault test",
    )
    assert retried["version"] == "1" and _versions() == [1]  # no second version
    tags = registry.configure_mlflow().get_model_version("churn_model", "1").tags
    assert tags["airflow_run_id"] == run and tags["training_set_hash"] == manifest["training_set_hash"]

    # The same model an undisturbed run trains: same data, same seed, same metrics.
    with platform_home(tmp_path_factory.mktemp("undisturbed")) as other:
        shutil.copytree(home / "lake", other / "lake")
        clean = train_and_register(
            uc,
            _training_set(run),
            get_lake(),
            hyperparameters={},
            dag_id="churn_training",
            airflow_run_id=run,
            reason="fault test",
        )
    assert clean["metrics"] == pytest.approx(retried["metrics"], abs=1e-12)


def _champion_and_challenger(run: str) -> tuple[Any, Any]:
    """A weak v1 made champion by hand (as an operator may), and a full v2 that beats it."""
    uc, lake = get_use_case("churn"), get_lake()
    weak_run = "manual__weak"
    weak = train_and_register(
        uc,
        _training_set(weak_run),
        lake,
        hyperparameters={"max_iter": 2, "max_leaf_nodes": 2},
        dag_id="churn_training",
        airflow_run_id=weak_run,
        reason="fault test",
    )
    registry.configure_mlflow().set_registered_model_alias("churn_model", registry.CHAMPION, weak["version"])
    manifest = _training_set(run)
    return train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id=run,
        reason="fault test",
    ), manifest


def test_promote_killed_after_the_alias_moved(
    home: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = "manual__challenger"
    uc = get_use_case("churn")
    with platform_home(tmp_path_factory.mktemp("undisturbed")) as other:
        shutil.copytree(home / "lake", other / "lake")
        trained, manifest = _champion_and_challenger(run)
        undisturbed = evaluate_and_promote(
            uc, trained, manifest, get_lake(), mode=None, dag_id="churn_training", airflow_run_id=run
        )
    assert undisturbed["outcome"] == "promoted", undisturbed["reason"]

    trained, manifest = _champion_and_challenger(run)
    killed("promote", "promote", {"trained": trained, "manifest": manifest, "run_id": run}, tmp_path)
    client, lake = registry.configure_mlflow(), get_lake()
    assert (
        registry.alias_version(client, "churn_model", registry.CHAMPION).version == 2
    )  # moved, never absent
    assert registry.promotion_history(lake, "churn") == []  # not yet recorded

    retried = evaluate_and_promote(
        uc, trained, manifest, lake, mode=None, dag_id="churn_training", airflow_run_id=run
    )
    volatile = (
        "decided_at",
        "mlflow_run_id",
        "mlflow_run_url",
        "lineage",
        "evidence_uri",
        "evidence_html_uri",
    )
    assert without(retried, *volatile) == without(undisturbed, *volatile)  # not "first model"
    assert without(retried["lineage"], "training_set_uri") == without(
        undisturbed["lineage"], "training_set_uri"
    )  # other home
    assert retried["champion_before"] == "1" and retried["aliases_after"] == {
        "champion": "2",
        "previous_champion": "1",
    }
    assert [h["version"] for h in registry.promotion_history(lake, "churn")] == ["2"]
    assert registry.alias_version(client, "churn_model", registry.PREVIOUS).version == 1
    assert not lake.exists(layout.promotion_intent("churn", run, "2"))


def test_score_killed_before_its_manifest(home: Path, tmp_path: Path) -> None:
    uc, lake = get_use_case("churn"), get_lake()
    run = "manual__first"
    manifest = _training_set(run)
    trained = train_and_register(
        uc,
        manifest,
        lake,
        hyperparameters={},
        dag_id="churn_training",
        airflow_run_id=run,
        reason="fault test",
    )
    assert evaluate_and_promote(
        uc, trained, manifest, lake, mode=None, dag_id="churn_training", airflow_run_id=run
    )["promoted"]
    store, day = ParquetFeatureStore(lake), DAYS[-1]
    undisturbed = score_partition(uc, day, lake, store)
    expected = lake.read_bytes(layout.predictions_file("churn", day))
    lake.delete(layout.predictions_dir("churn", day))

    killed("score", "score", {"day": day.isoformat()}, tmp_path)
    assert lake.exists(layout.predictions_file("churn", day))
    assert read_predictions(lake, "churn", [day]).empty  # uncommitted: drift does not read it

    retried = score_partition(uc, day, lake, store)
    volatile = ("seconds", "rows_per_second")
    assert without(retried, *volatile) == without(undisturbed, *volatile)
    assert lake.read_bytes(layout.predictions_file("churn", day)) == expected
    assert len(read_predictions(lake, "churn", [day])) == undisturbed["rows"]


# Alert, trigger ---------------------------------------------------------------------------------


def _alert() -> dict[str, Any]:
    return drift_alert(
        use_case="churn", day="2026-09-07", model_version="1", drift_share=0.5, dataset_drift=True,
        top_features=[("tenure_months", 0.4)], reasons=["drift share 50% is above 30%"], report_uri="file:///r.html",
    )  # fmt: skip


def test_alert_killed_after_slack_took_it(home: Path, tmp_path: Path, slack_standin: SlackStandin) -> None:
    lake, alert = get_lake(), _alert()
    enqueue(lake, "churn", alert)
    target = SlackTarget(token="xoxb-test", channel="#mlops", base_url=slack_standin.api_base_url)

    killed("alert", "alert", {"scope": "churn", "target": vars(target)}, tmp_path)
    assert len(slack_standin.messages) == 1
    assert lake.list(layout.alert_box("churn", "outbox")) == [f"{alert['id']}.json"]  # not lost

    # A retry inside the dead sender's lease leaves the alert alone; after it, the sender that
    # takes over finds the message in the channel and records it instead of posting again.
    assert deliver_pending(lake, "churn", target)["pending"] == [alert["id"]]
    later = dt.datetime.now(dt.UTC) + CLAIM_LEASE + dt.timedelta(seconds=5)
    assert deliver_pending(lake, "churn", target, now=later)["delivered"] == [alert["id"]]
    assert len(slack_standin.messages) == 1
    assert lake.list(layout.alert_box("churn", "sent")) == [f"{alert['id']}.json"]
    assert lake.list(layout.alert_box("churn", "outbox")) == []


def test_alert_through_a_webhook_is_never_lost(
    home: Path, tmp_path: Path, slack_standin: SlackStandin
) -> None:
    lake, alert = get_lake(), _alert()
    enqueue(lake, "churn", alert)
    target = SlackTarget(webhook_url=slack_standin.webhook_url)

    killed("alert", "alert", {"scope": "churn", "target": vars(target)}, tmp_path)
    later = dt.datetime.now(dt.UTC) + CLAIM_LEASE + dt.timedelta(seconds=5)
    assert deliver_pending(lake, "churn", target, now=later)["delivered"] == [alert["id"]]
    # A webhook cannot read its channel: at least once, so the one window allows a repeat.
    assert [m.text for m in slack_standin.messages] == [alert["text"]] * 2


def test_trigger_killed_after_the_claim(home: Path, tmp_path: Path) -> None:
    uc, lake = get_use_case("churn"), get_lake()
    result = {
        "day": "2026-09-07", "model_version": "1", "drift_share": 0.5, "dataset_drift": True, "drifted": True,
        "reasons": ["drift share 50% is above 30%"], "top_features": [], "report_uri": "", "summary_uri": "",
        "mlflow_run_id": "", "alert": "",
    }  # fmt: skip
    now = dt.datetime(2026, 9, 8, 1, tzinfo=dt.UTC)
    drift_run = "scheduled__2026-09-08T00:00:00+00:00"

    killed(
        "trigger", "trigger", {"result": result, "drift_run_id": drift_run, "now": now.isoformat()}, tmp_path
    )
    claimed = lake.read_json(layout.retrain_guard_state("churn"))

    # The task's retry decides the same thing: the same training run, so Airflow creates it once.
    retried = decide_and_record(
        lake,
        uc,
        result,
        drift_run_id=drift_run,
        active_training_runs=0,
        now=now + dt.timedelta(minutes=5),
        run_exists=lambda _: False,
    )  # type: ignore[arg-type]
    assert retried == claimed and retried is not None
    assert retried["training_run_id"] == f"drift__2026-09-07__{drift_run.replace(':', '').replace('+', '')}"
