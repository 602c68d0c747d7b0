"""``python -m mlops check`` with its smoke run: the real DAGs on a sample in a scratch home (a child
process), the gate on the sample, and the dry run against a production champion."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mlops.dev.check import CheckOptions, UseCaseCheck, run_checks
from tests.unit.dev.test_check import _derive, _edit, _register_champion

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SMOKE_STEPS = ["smoke:dags", "smoke:data", "smoke:training", "smoke:scoring", "smoke:drift"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Empty databases the smoke runs of this module share (the first run makes them)."""
    return tmp_path_factory.mktemp("check-cache")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config"


def _check(config: Path, name: str, cache: Path) -> UseCaseCheck:
    options = CheckOptions(config_dir=config, feature_repo=ROOT / "include" / "feature_repo", cache_dir=cache)
    (check,) = run_checks([name], options)
    return check


def _statuses(check: UseCaseCheck) -> dict[str, str]:
    return {f.check: f.status for f in check.findings}


def _message(check: UseCaseCheck, name: str) -> str:
    return next(f.message for f in check.findings if f.check == name)


def test_a_use_case_passes_through_its_real_dags(
    config: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))  # no registry: no contract, no dry run
    started = time.monotonic()
    check = _check(config, "churn", cache)
    print(f"\nchurn checked in {time.monotonic() - started:.0f} s (smoke run included)")
    assert not check.failed, check.findings
    statuses = _statuses(check)
    assert [s for s in statuses if s.startswith("smoke:")] == SMOKE_STEPS
    assert all(statuses[s] == "ok" for s in SMOKE_STEPS)
    assert "5 sample days" in _message(check, "smoke:data") and "roc_auc" in _message(check, "smoke:training")
    assert statuses["dry_run"] == "skipped"


def test_a_model_that_fails_its_thresholds_on_the_sample_fails(
    config: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    _edit(config, "delivery_time", lambda raw: raw["promotion"]["thresholds"].update(r2={"min": 0.995}))
    check = _check(config, "delivery_time", cache)
    assert _statuses(check)["smoke:training"] == "error"
    message = _message(check, "smoke:training")
    assert "the model trained on the sample fails the gate" in message and "< minimum 0.995" in message
    # The sample model still goes through scoring and drift: their own failures would show too.
    assert _statuses(check)["smoke:scoring"] == "ok"


def test_a_change_that_would_lose_to_the_champion_fails_the_dry_run(
    config: Path, cache: Path, fresh_home: Path
) -> None:
    version = _register_champion("delivery_time", config)

    def weaken(raw: dict) -> None:
        raw["model"]["hyperparameters"] = {"n_estimators": 2, "max_depth": 1, "n_jobs": 1}

    _edit(config, "delivery_time", weaken)
    _derive(config)
    check = _check(config, "delivery_time", cache)
    assert _statuses(check)["contract"] == "ok"  # same features: nothing breaks in production
    assert _statuses(check)["dry_run"] == "error", check.findings
    assert f"the change makes the model worse than champion v{version} on rmse" in _message(check, "dry_run")
