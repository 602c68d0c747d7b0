"""DAG integrity and policy: everything parses, every DAG is documented and retried, parsing is light."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# boto3 is not listed: creating any Asset makes Airflow load the installed providers' URI
# handlers, and the Amazon provider's imports boto3. Our own modules never import it at parse
# time (ruff's TID253 bans that in dags/ and plugins/).
HEAVY = ["pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently", "pyarrow", "matplotlib"]
KINDS = ["data", "training", "scoring", "drift", "rollback"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_every_use_case_gets_every_pipeline(dagbag) -> None:
    expected = {f"{uc}_{kind}" for uc in ("churn", "delivery_time") for kind in KINDS}
    assert expected <= set(dagbag.dag_ids)


def test_policy(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "mlops" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure alert"
        io_tasks = [t for t in dag.tasks if t.task_id in {"extract_batch", "prepare_training_set", "score_partition", "train_model"}]
        for task in io_tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} must retry I/O"
            assert task.retry_exponential_backoff, f"{dag_id}.{task.task_id} must back off"


def test_run_time_choices_are_typed_params(dagbag) -> None:
    training = dagbag.dags["churn_training"]
    schema = training.params.get_param("promotion_mode").schema
    assert schema["enum"] == ["auto", "approval", "dry_run"]
    assert training.params.get_param("interval").schema["format"] == "date"
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        training.params.get_param("promotion_mode").resolve("yolo")


def test_parsing_imports_no_heavy_library() -> None:
    code = (
        "import sys, json, runpy, glob\n"
        f"sys.path.insert(0, {str(ROOT / 'plugins')!r})\n"
        f"for f in sorted(glob.glob({str(ROOT / 'dags')!r} + '/*.py')): runpy.run_path(f)\n"
        "import mlops_plugin\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy())
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_broken_config_breaks_only_its_own_dags(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "use_cases" / "churn.yaml").write_text(
        (config / "use_cases" / "churn.yaml").read_text().replace("holdout: 0.2", "holdout: 0.9")
    )
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(ROOT / 'dags')!r})\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'dags': {k: {'tags': sorted(v.tags), 'doc': v.doc_md} for k, v in bag.dags.items()}}))\n"
    )
    env = os.environ | {"MLOPS_CONFIG_DIR": str(config)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert "delivery_time_training" in result["dags"] and "config-error" not in result["dags"]["delivery_time_training"]["tags"]
    broken = result["dags"]["churn_training"]
    assert "config-error" in broken["tags"]
    assert "churn.yaml: split.holdout" in broken["doc"]
