"""One task in a process of its own, so a fault test can kill it with SIGKILL.

    python -m tests.faults.child <step> <arguments.json>

Like an Airflow task process, the child reads the platform's settings from the environment
it inherits (``MLOPS_HOME``, ``MLFLOW_TRACKING_URI``, ``MLOPS_FAULT_POINT``...), runs one
task function of the package and prints its result as JSON on its last line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

STEPS = ("archive", "validate", "materialize", "train", "promote", "score", "alert", "trigger")


def run(step: str, args: dict[str, Any]) -> Any:
    from mlops.core.config import get_use_case
    from mlops.core.lake import get_lake
    from mlops.core.settings import load_settings
    from mlops.data.feature_store import get_feature_store

    uc, lake, settings = get_use_case(args.get("use_case", "churn")), get_lake(), load_settings()
    day = dt.date.fromisoformat(args["day"]) if "day" in args else None
    if step == "archive":
        from mlops.data.tasks import extract_and_archive

        return extract_and_archive(uc, day, lake, settings.landing_uri)  # type: ignore[arg-type]
    if step == "validate":
        from mlops.data.tasks import validate_batch

        return validate_batch(uc, day, lake, settings.config_dir)  # type: ignore[arg-type]
    if step == "materialize":
        from mlops.data.tasks import materialize_features

        return materialize_features(uc, day, lake, get_feature_store())  # type: ignore[arg-type]
    if step == "train":
        from mlops.model.registration import train_and_register

        return train_and_register(
            uc, args["manifest"], lake, hyperparameters=args.get("hyperparameters") or {},
            dag_id="churn_training", airflow_run_id=args["run_id"], reason="fault test",
        )  # fmt: skip
    if step == "promote":
        from mlops.model.gate import evaluate_and_promote

        return evaluate_and_promote(
            uc,
            args["trained"],
            args["manifest"],
            lake,
            mode=None,
            dag_id="churn_training",
            airflow_run_id=args["run_id"],
        )
    if step == "score":
        from mlops.model.scoring import score_partition

        return score_partition(uc, day, lake, get_feature_store())  # type: ignore[arg-type]
    if step == "alert":
        from mlops.core.alerts import SlackTarget, deliver_pending

        return deliver_pending(lake, args["scope"], SlackTarget(**args["target"]))
    if step == "trigger":
        from mlops.monitoring.retrain import decide_and_record

        return decide_and_record(
            lake, uc, args["result"], drift_run_id=args["drift_run_id"], active_training_runs=0,
            now=dt.datetime.fromisoformat(args["now"]), run_exists=lambda run_id: False,
        )  # fmt: skip
    raise SystemExit(f"unknown step {step!r}; steps: {', '.join(STEPS)}")


if __name__ == "__main__":
    step, path = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(run(step, json.loads(path.read_text())), default=str))
