"""``python -m mlops check``: each kind of broken change is caught with a plain reason (static
checks, the contract with a registered champion, the dry-run gate), and ``--since`` picks only the
use cases a change touches. The smoke run of the DAGs is in tests/e2e/test_use_case_check.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlops.dev.check import (
    Champion,
    CheckOptions,
    Finding,
    UseCaseCheck,
    contract_findings,
    dry_run_findings,
    render_report,
    run_checks,
    select_use_cases,
)
from mlops.dev.cli import main

ROOT = Path(__file__).resolve().parents[3]
GIT_USER = ["-c", "user.name=check", "-c", "user.email=check@example.com"]


@pytest.fixture
def no_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A home of the test's own with no MLflow store in it: no registry is configured."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped config and feature repository, in a git repository (one commit)."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "config", repo / "config")
    shutil.copytree(ROOT / "include" / "feature_repo", repo / "include" / "feature_repo")
    monkeypatch.setenv("MLOPS_FEATURE_REPO", str(repo / "include" / "feature_repo"))
    _git(repo, "init", "-q")
    _commit(repo)
    return repo / "config"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_USER, "-C", str(repo), *args], check=True, capture_output=True)


def _commit(repo: Path) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "change")


def _edit(config: Path, name: str, change) -> None:
    path = config / "use_cases" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _derive(config: Path) -> None:
    from mlops.core.config import load_use_cases
    from mlops.data.validation import derive_suite, suite_path

    good, bad = load_use_cases(config)
    assert not bad, bad
    for use_case in good.values():
        for feed in use_case.feeds:
            suite_path(config, feed.stream).write_text(
                json.dumps(derive_suite(feed), indent=2, sort_keys=True) + "\n"
            )


def _check(
    config: Path, *names: str, expect_retrain: bool = False, since: str | None = None
) -> list[UseCaseCheck]:
    options = CheckOptions(
        config_dir=config,
        feature_repo=config.parent / "include" / "feature_repo",
        since=since,
        expect_retrain=expect_retrain,
        smoke=False,
    )
    return run_checks(list(names), options)


def _errors(check: UseCaseCheck) -> dict[str, str]:
    """Each failed check's messages, joined."""
    errors: dict[str, str] = {}
    for f in check.findings:
        if f.status == "error":
            errors[f.check] = f"{errors[f.check]} | {f.message}" if f.check in errors else f.message
    return errors


# -- each kind of broken change -------------------------------------------------------------------------


@pytest.mark.usefixtures("no_registry")
def test_the_shipped_use_cases_pass_the_static_checks(config: Path) -> None:
    checks = _check(config)
    assert [c.name for c in checks] == ["churn", "delivery_time"]
    for check in checks:
        assert not check.failed, check.findings
        assert {f.check for f in check.findings} >= {"config", "suite", "sample", "features"}
        assert {f.check: f.status for f in check.findings}["contract"] == "skipped"


@pytest.mark.usefixtures("no_registry")
def test_invalid_yaml_is_reported_with_the_loaders_error(config: Path, tmp_path: Path) -> None:
    path = config / "use_cases" / "churn.yaml"
    path.write_text(path.read_text().replace("  min_rows: 50", "  min_rows: [50"))
    report = tmp_path / "report.md"
    assert main(["check", "--no-smoke", "--config-dir", str(config), "--report", str(report)]) == 1
    text = report.read_text()
    assert "❌ **config**" in text and "churn.yaml: (yaml)" in text
    assert "| `delivery_time` | ✅ passed |" in text


@pytest.mark.usefixtures("no_registry")
def test_an_invalid_value_names_the_file_and_the_key(config: Path) -> None:
    _edit(config, "churn", lambda raw: raw["split"].update(holdout=0.9))
    (check,) = _check(config, "churn")
    assert "churn.yaml: split.holdout:" in _errors(check)["config"]
    assert [f.check for f in check.findings] == ["config"]  # nothing else can be judged


@pytest.mark.usefixtures("no_registry")
def test_a_suite_out_of_date_names_what_differs(config: Path) -> None:
    _edit(config, "delivery_time", lambda raw: raw["schema"]["columns"]["items"].update(max=50))
    (check,) = _check(config, "delivery_time")
    message = _errors(check)["suite"]
    assert "expectations/delivery_time.json is out of date" in message
    assert "expect_column_values_to_be_between(items)" in message and "python -m mlops suites" in message


@pytest.mark.usefixtures("no_registry")
def test_a_sample_that_fails_validation_names_the_expectation(config: Path) -> None:
    # The upstream (the simulator) delivers tenures up to 72 months; the change allows only 12.
    _edit(config, "churn", lambda raw: raw["schema"]["columns"]["tenure_months"].update(max=12))
    _derive(config)
    (check,) = _check(config, "churn")
    message = _errors(check)["sample"]
    assert "fails the use case's expectations" in message
    assert "expect_column_values_to_be_between on column 'tenure_months'" in message
    assert {f.check: f.status for f in check.findings}["suite"] == "ok"


@pytest.mark.usefixtures("no_registry")
def test_a_renamed_column_fails_the_sample(config: Path) -> None:
    def rename(raw: dict) -> None:
        columns = raw["schema"]["columns"]
        columns["logins_last_30d"] = columns.pop("logins_30d")
        raw["features"][3]["inputs"] = ["logins_last_30d"]

    _edit(config, "churn", rename)
    _derive(config)
    (check,) = _check(config, "churn")
    assert "logins_last_30d" in _errors(check)["sample"]


@pytest.mark.usefixtures("no_registry")
def test_feature_code_that_raises_is_named_with_its_error(config: Path) -> None:
    repo = config.parent / "include" / "feature_repo"
    (repo / "risk.py").write_text(
        "from mlops.core.feature_repo import feature\n\n\n"
        "@feature\ndef contacts_share(batch):\n    return batch['support_contacts_30d'] / batch['no_such_column']\n"
    )
    feature = {
        "name": "contacts_share",
        "transform": "code",
        "function": "risk.contacts_share",
        "inputs": ["support_contacts_30d"],
    }
    _edit(config, "churn", lambda raw: raw["features"].append(feature))
    (check,) = _check(config, "churn")
    message = _errors(check)["features"]
    assert (
        "feature 'contacts_share' (risk.contacts_share) raised KeyError: 'no_such_column' on the sample"
        in message
    )


@pytest.mark.usefixtures("no_registry")
def test_feature_code_that_does_not_import_is_named(config: Path) -> None:
    repo = config.parent / "include" / "feature_repo"
    (repo / "risk.py").write_text(
        "import no_such_package\nfrom mlops.core.feature_repo import feature\n\n\n@feature\ndef tenure_years(batch):\n    return batch['tenure_months'] / 12\n"
    )
    feature = {
        "name": "tenure_years",
        "transform": "code",
        "function": "risk.tenure_years",
        "inputs": ["tenure_months"],
    }
    _edit(config, "churn", lambda raw: raw["features"].append(feature))
    (check,) = _check(config, "churn")
    assert (
        "cannot be imported: ModuleNotFoundError: No module named 'no_such_package'"
        in _errors(check)["features"]
    )


@pytest.mark.usefixtures("no_registry")
def test_a_use_case_without_a_simulator_is_checked_on_synthesized_rows(config: Path) -> None:
    text = (
        (config / "use_cases" / "delivery_time.yaml")
        .read_text()
        .replace("name: delivery_time", "name: courier_eta")
    )
    (config / "use_cases" / "courier_eta.yaml").write_text(text)
    _derive(config)
    (check,) = _check(config, "courier_eta")
    assert not check.failed, check.findings
    assert "rows synthesized from the schema" in {f.check: f.message for f in check.findings}["sample"]


@pytest.mark.usefixtures("no_registry")
def test_an_unknown_use_case_is_an_error(config: Path) -> None:
    (check,) = _check(config, "fraud")
    assert "no use case named 'fraud'" in _errors(check)["config"]


# -- the contract with the production champion ----------------------------------------------------------


def _register_champion(use_case_name: str, config: Path) -> str:
    """A model registered as the platform does: trained on today's features, its signature and
    feature_version tag; the `champion` alias on it."""
    import datetime as dt

    import mlflow
    from mlflow.models import infer_signature

    from mlops.core.config import get_use_case
    from mlops.data.features import build_features
    from mlops.dev.simulator import simulate_batch
    from mlops.model import registry, tags
    from mlops.model.registration import skops_trusted_types
    from mlops.model.training import make_pipeline, predict_scores

    use_case = get_use_case(use_case_name, config)
    batch = simulate_batch(use_case_name, dt.date(2026, 6, 1), 600)
    X = build_features(batch, use_case)[use_case.feature_names]
    pipe = make_pipeline(use_case).fit(X, batch[use_case.schema_.target])
    client = registry.configure_mlflow()
    experiment = registry.ensure_experiment(client, use_case)
    with mlflow.start_run(experiment_id=experiment), registry.quiet_skops_type_scan():
        info = mlflow.sklearn.log_model(
            sk_model=pipe, name="model", signature=infer_signature(X.head(5), predict_scores(pipe, X.head(5), use_case.task)),
            registered_model_name=use_case.registered_model_name, skops_trusted_types=skops_trusted_types(pipe),
        )  # fmt: skip
    version = str(info.registered_model_version)
    registry.tag_version(
        client, use_case.registered_model_name, version, {tags.FEATURE_VERSION: use_case.feature_version}
    )
    client.set_registered_model_alias(use_case.registered_model_name, registry.CHAMPION, version)
    return version


def _drop_support_contacts(raw: dict) -> None:
    raw["schema"]["columns"].pop("support_contacts_30d")
    raw["features"] = [f for f in raw["features"] if f["name"] != "support_contacts_30d"]


@pytest.mark.slow  # trains and registers a champion in a real registry first
def test_a_removed_column_the_champion_reads_fails_naming_it(config: Path, fresh_home: Path) -> None:
    version = _register_champion("churn", config)
    (check,) = _check(config, "churn")
    assert {f.check: f.status for f in check.findings}["contract"] == "ok"

    _edit(config, "churn", _drop_support_contacts)
    _derive(config)
    (check,) = _check(config, "churn")
    contract = [f.message for f in check.findings if f.check == "contract" and f.status == "error"]
    assert any(
        f"feature 'support_contacts_30d' is removed but champion v{version} reads it" in m for m in contract
    ), contract
    assert any("column 'support_contacts_30d' is removed" in m for m in contract), contract
    assert any("feature definitions differ" in m for m in contract), contract
    assert all("--expect-retrain" in m for m in contract)

    # Declared as a retrain, the same change passes the contract with warnings.
    (check,) = _check(config, "churn", expect_retrain=True)
    warnings = [f.message for f in check.findings if f.check == "contract"]
    assert {f.status for f in check.findings if f.check == "contract"} == {"warning"}
    assert len(warnings) == len(contract) and all("retrain is declared" in m for m in warnings)


def test_a_retyped_column_or_feature_the_champion_reads_fails_naming_it(config: Path) -> None:
    from mlops.core.config import get_use_case

    before = get_use_case("churn", config)
    champion = Champion(
        "4",
        before.feature_version,
        {f.name: "category" if f.categorical else "numeric" for f in before.features},
    )
    _edit(config, "churn", lambda raw: raw["schema"]["columns"]["logins_30d"].update(type="float"))
    (finding,) = contract_findings(get_use_case("churn", config), champion, before, expect_retrain=False)
    assert finding.status == "error"
    assert (
        "column 'logins_30d' is retyped from int to float but champion v4 reads it (feature 'log_logins_30d')"
        in finding.message
    )

    _edit(config, "churn", lambda raw: raw["features"][0].update(transform="category"))
    messages = [
        f.message
        for f in contract_findings(get_use_case("churn", config), champion, before, expect_retrain=False)
    ]
    assert any(
        "feature 'tenure_months' is retyped: numeric for champion v4, category now" in m for m in messages
    ), messages
    assert any(
        "tenure_months changed" in m and "scoring and serving refuse champion v4" in m for m in messages
    ), messages


# -- the dry-run gate ----------------------------------------------------------------------------------


def _holdout_and_champion(name: str) -> tuple:
    import datetime as dt

    from mlops.core.config import get_use_case
    from mlops.data.features import LABEL, build_features
    from mlops.dev.simulator import simulate_batch
    from mlops.model.training import fit_baseline, make_pipeline, predict_scores

    use_case = get_use_case(name, ROOT / "config")
    train = simulate_batch(name, dt.date(2026, 6, 1), 1500)
    test = simulate_batch(name, dt.date(2026, 6, 2), 600)
    X_train = build_features(train, use_case)[use_case.feature_names]
    y_train = train[use_case.schema_.target].to_numpy()
    holdout = build_features(test, use_case).assign(**{LABEL: test[use_case.schema_.target].to_numpy()})
    champion = make_pipeline(use_case).fit(X_train, y_train)
    X = holdout[use_case.feature_names]
    baseline = predict_scores(fit_baseline(X_train, y_train, use_case.task), X, use_case.task)
    return use_case, holdout, champion, predict_scores(champion, X, use_case.task), baseline


def test_a_change_that_would_lose_to_the_champion_fails_the_dry_run() -> None:
    import numpy as np

    use_case, holdout, champion, _, baseline = _holdout_and_champion("churn")
    # A sample model that learned nothing: scores unrelated to the label.
    scores = np.random.default_rng(0).uniform(size=len(holdout))
    (finding,) = dry_run_findings(use_case, holdout, scores, baseline, champion, "7", expect_retrain=False)
    assert finding.status == "error"
    assert (
        "worse than champion v7 on roc_auc" in finding.message and "would not be promoted" in finding.message
    )


def test_a_tie_with_the_champion_is_reported_not_failed() -> None:
    use_case, holdout, champion, champion_scores, baseline = _holdout_and_champion("delivery_time")
    (finding,) = dry_run_findings(
        use_case, holdout, champion_scores, baseline, champion, "3", expect_retrain=False
    )
    assert finding.status == "ok"
    assert (
        "would not be promoted" in finding.message and "not clearly better than champion" in finding.message
    )


def test_a_champion_that_cannot_score_the_new_features_is_named() -> None:
    use_case, holdout, champion, champion_scores, baseline = _holdout_and_champion("delivery_time")
    changed = holdout.drop(columns=["weather"]).assign(weather_code=1.0)
    renamed = use_case.model_copy(
        update={
            "features": [
                f.model_copy(update={"name": "weather_code"}) if f.name == "weather" else f
                for f in use_case.features
            ]
        }
    )
    (finding,) = dry_run_findings(
        renamed, changed, champion_scores, baseline, champion, "3", expect_retrain=False
    )
    assert finding.status == "error" and "champion v3 cannot score the changed features" in finding.message


# -- which use cases a change touches -------------------------------------------------------------------


def _with_code_feature(config: Path) -> None:
    feature = {
        "name": "charges_per_contact",
        "transform": "code",
        "function": "churn.charges_per_contact",
        "inputs": ["monthly_charges", "support_contacts_30d"],
    }
    _edit(config, "churn", lambda raw: raw["features"].append(feature))
    _derive(config)
    _commit(config.parent)


def _selected(config: Path, platform: Path) -> dict[str, list[str]]:
    options = CheckOptions(
        config_dir=config, feature_repo=config.parent / "include" / "feature_repo", since="HEAD"
    )
    return select_use_cases([], options, [platform])


def test_since_picks_only_the_use_cases_a_change_touches(config: Path) -> None:
    _with_code_feature(config)
    repo = config.parent
    platform = repo / "include" / "mlops"
    platform.mkdir(parents=True)
    (platform / "__init__.py").write_text("")
    _commit(repo)
    assert _selected(config, platform) == {}

    # A change to a feature function: only the use case that calls it.
    code = repo / "include" / "feature_repo" / "churn.py"
    code.write_text(code.read_text().replace("(contacts + 1)", "(contacts + 2)"))
    assert _selected(config, platform) == {"churn": ["feature code churn.py"]}

    # A change to the other use case's YAML adds it; a threshold is a change like any other.
    _edit(config, "delivery_time", lambda raw: raw["promotion"]["thresholds"]["rmse"].update(max=14.0))
    assert set(_selected(config, platform)) == {"churn", "delivery_time"}
    _commit(repo)

    # A stored suite, and a new sample file, each touch their own use case only.
    (config / "samples").mkdir()
    (config / "samples" / "delivery_time.csv").write_text("order_id\n1\n")
    assert _selected(config, platform) == {"delivery_time": ["samples/delivery_time.csv"]}
    _commit(repo)

    # The platform's own code touches every use case.
    (platform / "__init__.py").write_text('"""changed"""\n')
    assert set(_selected(config, platform)) == {"churn", "delivery_time"}


def test_since_with_nothing_touched_checks_nothing(
    config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    report = tmp_path / "report.md"
    assert main(["check", "--since", "HEAD", "--config-dir", str(config), "--report", str(report)]) == 0
    assert "No use case is touched since `HEAD`" in report.read_text()


def test_since_outside_git_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    assert main(["check", "--since", "HEAD", "--config-dir", str(tmp_path / "config")]) == 2
    assert "git" in capsys.readouterr().err


# -- the report and the smoke run's isolation -----------------------------------------------------------


def test_the_report_is_one_table_and_a_list_per_use_case() -> None:
    ok = UseCaseCheck("churn", ["named"], [Finding("config", "ok", "valid")], 3.0)
    bad = UseCaseCheck(
        "delivery_time",
        ["use_cases/delivery_time.yaml"],
        [Finding("suite", "error", "out of date | stale")],
        1.0,
    )
    text = render_report([ok, bad], since="origin/main")
    assert "**1 of 2 use case(s) failed.**" in text
    assert "| `delivery_time` | ❌ failed | use_cases/delivery_time.yaml | 1 s |" in text
    assert "- ❌ **suite**: out of date \\| stale" in text


def test_the_smoke_run_gets_a_scratch_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.dev.smoke import smoke_environment

    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SLACK", "https://hooks.example/secret")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.prod:5000")
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://aws_lake@prod/lake")
    env = smoke_environment(tmp_path, tmp_path / "config", tmp_path / "repo")
    assert (
        "AIRFLOW_CONN_MLOPS_SLACK" not in env
        and "MLFLOW_TRACKING_URI" not in env
        and "MLOPS_LAKE_URI" not in env
    )
    assert env["MLOPS_HOME"] == str(tmp_path) and env["MLOPS_CONFIG_DIR"] == str(tmp_path / "config")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path}/airflow/airflow.db"


def test_the_scratch_config_lands_every_feed_as_files(tmp_path: Path) -> None:
    from mlops.core.config import load_use_case_file
    from mlops.dev.smoke import scratch_config

    source = tmp_path / "config"
    shutil.copytree(ROOT / "config", source)
    _edit(
        source,
        "churn",
        lambda raw: raw.update(source={"kind": "sql", "conn_id": "warehouse", "query": "select 1"}),
    )
    config = scratch_config(source / "use_cases" / "churn.yaml", source, tmp_path / "scratch")
    assert [p.name for p in (config / "use_cases").iterdir()] == ["churn.yaml"]
    use_case = load_use_case_file(config / "use_cases" / "churn.yaml")
    assert use_case.source.kind == "files" and use_case.source.uri == "{landing}/churn/{interval}.csv"
    assert (config / "expectations" / "churn.json").exists()
