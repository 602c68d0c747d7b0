"""``python -m mlops check``: a change to a use case or its feature code, checked before production.

Which use cases: those named; else, with ``--since REF``, those the change since ``REF`` touches
(their YAML, their stored suites ``config/expectations/<name>*.json``, their samples
``config/samples/<name>*``, a feature-repository file one of their features calls, or the
platform's own code, ``include/mlops/`` and ``dags/``, which touches every use case); else all.

Each use case goes through these checks (docs/operations.md, "Changing a use case"):

===========  ====================================================================================
check        fails when
===========  ====================================================================================
config       the YAML does not parse or validate (the loader's error: file, key, problem)
suite        a stored suite differs from the one the config derives (``python -m mlops suites``)
sample       the sample delivery (:mod:`mlops.dev.samples`) fails the use case's own expectations
features     a feature function cannot be imported, raises on the sample, or returns one value
             per row of the wrong kind; or the features cannot be built from the sample
contract     (registry) the production champion reads a feature or column the change removes or
             retypes, or its feature definitions change, unless the change declares a retrain
             (``--expect-retrain``): scoring and serving refuse that champion until a new one
smoke:*      the real DAGs on the sample in a scratch home (:mod:`mlops.dev.smoke`): data, labels,
             training with the gate on the sample, scoring, drift; the failed task and its error
dry_run      (registry) the sample model is worse than the production champion on the sample
             holdout beyond noise, overall or on a blocking slice (the gate's own functions)
===========  ====================================================================================

The result is a markdown report (for a pull-request comment) and an exit status: 1 if any
check failed, else 0.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.core.settings import Settings

Status = Literal["ok", "warning", "error", "skipped"]
SMOKE_TIMEOUT_SECONDS = 900
ICON: dict[Status, str] = {"ok": "✅", "warning": "⚠️", "error": "❌", "skipped": "⏭️"}
RETRAIN_FLAG = "--expect-retrain"


class CheckError(RuntimeError):
    """The check itself cannot run (git cannot answer for ``--since``, a registry that errs)."""


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str


@dataclass
class UseCaseCheck:
    """Everything checked of one use case, and why it was checked."""

    name: str
    reasons: list[str]
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(f.status == "error" for f in self.findings)

    def add(self, check: str, status: Status, message: str) -> Finding:
        finding = Finding(check, status, message)
        self.findings.append(finding)
        return finding


# -- which use cases a change touches -----------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise CheckError(f"git is needed to tell what changed: {exc}") from None
    if out.returncode != 0:
        raise CheckError(f"`git {' '.join(args)}` failed in {repo}: {out.stderr.strip()}")
    return out.stdout


def repo_top(path: Path) -> Path:
    return Path(_git(path, "rev-parse", "--show-toplevel").strip()).resolve()


def changed_paths(repo: Path, since: str) -> list[Path]:
    """Files changed between the merge base of ``since`` and the working tree (new files too)."""
    top = repo_top(repo)
    names = _git(top, "diff", "--name-only", "--no-renames", "--merge-base", since).splitlines()
    names += _git(top, "ls-files", "--others", "--exclude-standard").splitlines()
    return sorted({(top / name).resolve() for name in names if name})


FUNCTION_REF = re.compile(r"function:\s*['\"]?([A-Za-z_]\w*)\.")


def feature_modules(path: Path) -> set[str]:
    """The feature-repository files (module names) a use-case YAML's features call."""
    import yaml

    text = path.read_text() if path.is_file() else ""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:  # a YAML that does not parse still names its functions in its text
        return set(FUNCTION_REF.findall(text))
    features = raw.get("features") if isinstance(raw, dict) else None
    refs = [f.get("function") for f in features or [] if isinstance(f, dict)]
    return {ref.partition(".")[0] for ref in refs if isinstance(ref, str) and ref}


def touched_use_cases(
    changed: Iterable[Path], *, config_dir: Path, feature_repo: Path, platform_dirs: Sequence[Path]
) -> dict[str, list[str]]:
    """Each use case a change touches, with the changed files that touch it.

    A feature-repository file touches every use case that calls any function of it: the file's
    hash is the code version of each of its features (:mod:`mlops.core.feature_repo`), so any
    edit gives those use cases new features. Platform code touches every use case.
    """
    use_cases = config_dir.resolve() / "use_cases"
    expectations = config_dir.resolve() / "expectations"
    samples = config_dir.resolve() / "samples"
    repo = feature_repo.resolve()
    names = sorted(p.stem for p in use_cases.glob("*.yaml"))
    calls = {name: feature_modules(use_cases / f"{name}.yaml") for name in names}
    touched: dict[str, list[str]] = {}

    def touch(name: str, why: str) -> None:
        touched.setdefault(name, [])
        if why not in touched[name]:
            touched[name].append(why)

    for path in changed:
        if any(path.is_relative_to(d.resolve()) for d in platform_dirs):
            for name in names:
                touch(name, f"platform code {path.name}")
        elif path.parent == use_cases and path.suffix == ".yaml":
            touch(path.stem, f"use_cases/{path.name}")
        elif path.parent in (expectations, samples):
            touch(path.name.split(".")[0], f"{path.parent.name}/{path.name}")
        elif path.parent == repo and path.suffix == ".py":
            for name in names:
                if path.stem in calls[name]:
                    touch(name, f"feature code {path.name}")
    return touched


# -- static checks ------------------------------------------------------------------------------------


def check_config(path: Path, report: UseCaseCheck) -> UseCase | None:
    from mlops.core.config import ConfigError, load_use_case_file

    try:
        use_case = load_use_case_file(path)
    except ConfigError as exc:
        report.add("config", "error", str(exc))
        return None
    report.add("config", "ok", f"use_cases/{path.name} is valid")
    return use_case


def _expectation_label(expectation: dict[str, Any]) -> str:
    kwargs = expectation.get("kwargs") or {}
    where = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    return f"{expectation['type']}({where})" if where else str(expectation["type"])


def check_suites(use_case: UseCase, config_dir: Path, report: UseCaseCheck) -> None:
    """The stored suites against the derived ones, as ``python -m mlops suites --check`` does."""
    from mlops.data.validation import derive_suite, suite_path

    for feed in use_case.feeds:
        path = suite_path(config_dir, feed.stream)
        derived = derive_suite(feed)
        text = json.dumps(derived, indent=2, sort_keys=True) + "\n"
        rel = f"expectations/{path.name}"
        if not path.exists():
            report.add("suite", "error", f"{rel} is missing; run `python -m mlops suites` and commit it")
            continue
        stored_text = path.read_text()
        if stored_text == text:
            report.add("suite", "ok", f"{rel} matches use_cases/{use_case.name}.yaml")
            continue
        try:
            stored = json.loads(stored_text).get("expectations") or []
        except ValueError:
            stored = []
        new = [_expectation_label(e) for e in derived["expectations"] if e not in stored]
        gone = [_expectation_label(e) for e in stored if e not in derived["expectations"]]
        diff = "; ".join(
            part for part in (
                f"the config adds or changes {', '.join(new[:6])}{' ...' if len(new) > 6 else ''}" if new else "",
                f"the stored suite still has {', '.join(gone[:6])}{' ...' if len(gone) > 6 else ''}" if gone else "",
            ) if part
        )  # fmt: skip
        report.add(
            "suite",
            "error",
            f"{rel} is out of date with use_cases/{use_case.name}.yaml ({diff or 'formatting differs'}); "
            "run `python -m mlops suites` and commit the result",
        )


def check_sample(
    use_case: UseCase, config_dir: Path, day: dt.date, report: UseCaseCheck
) -> pd.DataFrame | None:
    """The sample delivery of ``day`` through the validation gate's own parsing and expectations;
    the parsed frame (what features are built from), or None if it cannot be parsed."""
    from mlops.data.parsing import BatchUnreadable, read_batch
    from mlops.data.validation import (
        derive_suite,
        evaluate,
        event_time_window,
        event_times_seen,
        outcome_from_result,
    )
    from mlops.dev.samples import batch_for, sample_source
    from mlops.dev.simulator import batch_bytes
    from mlops.dev.smoke import ROWS

    feed = use_case.feed("batch")
    source = sample_source(use_case, config_dir)
    fmt = feed.source.format
    try:
        frame = read_batch(batch_bytes(batch_for(use_case, day, config_dir, rows=ROWS), fmt), feed, fmt)
    except BatchUnreadable as exc:
        report.add("sample", "error", f"the sample from {source} cannot be read as {fmt}: {exc}")
        return None
    suite = derive_suite(feed)
    window = event_time_window(day, feed.expectations.event_time_tolerance_hours, dt.datetime.now(dt.UTC))
    outcome = outcome_from_result(
        evaluate(frame, suite, window),
        len(frame),
        parameters=window,
        event_times_seen=event_times_seen(frame, suite),
    )
    if not outcome.passed:
        errors = "; ".join(f.describe() for f in outcome.errors)
        report.add(
            "sample",
            "error",
            f"the sample from {source} ({len(frame)} rows) fails the use case's expectations: {errors}",
        )
    elif outcome.warnings:
        warnings = "; ".join(f.describe() for f in outcome.warnings)
        report.add("sample", "warning", f"the sample from {source} passes with warnings: {warnings}")
    else:
        report.add(
            "sample",
            "ok",
            f"the sample from {source} ({len(frame)} rows) passes {outcome.evaluated} expectations",
        )
    return frame


def check_features(use_case: UseCase, batch: pd.DataFrame, report: UseCaseCheck) -> None:
    """Import each feature function and call it on the sample; then build every feature.

    The team's code is what is being checked: whatever it raises is the finding, by its type
    and message, and nothing else is judged from a function that raised.
    """
    import pandas as pd

    from mlops.core.feature_repo import load_function
    from mlops.data.features import build_features

    broken = False
    for spec in use_case.features:
        if spec.transform != "code" or spec.function is None:
            continue
        what = f"feature {spec.name!r} ({spec.function})"
        try:
            fn = load_function(spec.function)
        except Exception as exc:  # importing runs the team's module: any error is the finding
            report.add("features", "error", f"{what} cannot be imported: {type(exc).__name__}: {exc}")
            broken = True
            continue
        try:
            values = fn(batch.copy())
            count = len(values)
        except Exception as exc:  # the function under check raised: report it by type and message
            report.add(
                "features",
                "error",
                f"{what} raised {type(exc).__name__}: {exc} on the sample ({len(batch)} rows)",
            )
            broken = True
            continue
        if count != len(batch):
            report.add(
                "features",
                "error",
                f"{what} returned {count} values for {len(batch)} sample rows; one per row is expected",
            )
            broken = True
        elif (
            spec.dtype == "numeric"
            and len(batch)
            and pd.to_numeric(pd.Series(list(values)), errors="coerce").isna().all()
        ):
            report.add(
                "features",
                "error",
                f"{what} is declared numeric but returned no number on the sample; declare dtype: category or return numbers",
            )
            broken = True
    if broken:
        return
    try:
        features = build_features(batch, use_case)
    except (KeyError, ValueError, TypeError) as exc:
        report.add(
            "features", "error", f"the features cannot be built from the sample: {type(exc).__name__}: {exc}"
        )
        return
    empty = [name for name in use_case.feature_names if features[name].isna().all()]
    if empty:
        report.add(
            "features", "warning", f"feature(s) {', '.join(empty)} are empty (null) on every sample row"
        )
    else:
        report.add("features", "ok", f"{len(use_case.features)} features built on {len(batch)} sample rows")


# -- the contract with the production champion --------------------------------------------------------


@dataclass(frozen=True)
class Champion:
    """What the production champion reads: its features (and their kind) and feature version."""

    version: str
    feature_version: str | None
    inputs: dict[str, str | None]  # feature -> "numeric" | "category" (None: not recorded)


NUMERIC_TYPES = frozenset({"double", "float", "long", "integer", "boolean"})


def registry_location(settings: Settings) -> str | None:
    """The registry to check against, or None when none is configured: the embedded default's
    SQLite file counts only if it exists (it is where ``make demo`` puts its models)."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    return uri


def production_champion(use_case: UseCase) -> Champion | None:
    """The champion's inputs from its MLflow model signature (else the pipeline's
    ``feature_names_in_``) and its ``feature_version`` tag; None if there is no champion."""
    import mlflow

    from mlops.model import registry, tags

    client = registry.configure_mlflow()
    name = use_case.registered_model_name
    version = registry.alias_version(client, name, registry.CHAMPION)
    if version is None:
        return None
    info = mlflow.models.get_model_info(f"models:/{name}/{version.version}")
    inputs: dict[str, str | None] = {}
    if info.signature is not None and info.signature.inputs is not None:
        for spec in info.signature.inputs.inputs:
            kind = getattr(getattr(spec, "type", None), "name", None)
            inputs[str(spec.name)] = (
                None if kind is None else ("numeric" if kind in NUMERIC_TYPES else "category")
            )
    else:
        model = registry.load_model(name, str(version.version))
        inputs = {str(n): None for n in getattr(model, "feature_names_in_", [])}
    return Champion(str(version.version), (version.tags or {}).get(tags.FEATURE_VERSION) or None, inputs)


def reference_use_case(config_dir: Path, name: str, ref: str) -> UseCase | None:
    """The use case as it was at ``ref`` (git), or None (not in git, new, or invalid then)."""
    import yaml

    from mlops.core.config import ConfigError, parse_use_case

    path = (config_dir / "use_cases" / f"{name}.yaml").resolve()
    try:
        top = repo_top(config_dir)
        base = _git(top, "merge-base", ref, "HEAD").strip()  # where the change branched off
        text = _git(top, "show", f"{base}:{path.relative_to(top).as_posix()}")
    except (CheckError, ValueError):
        return None
    try:
        return parse_use_case(yaml.safe_load(text), path)
    except (ConfigError, yaml.YAMLError):
        return None


def contract_findings(
    use_case: UseCase, champion: Champion, reference: UseCase | None, *, expect_retrain: bool
) -> list[Finding]:
    """What the change breaks for the production champion: features it reads that are gone or
    of another kind, the batch columns those features read (from ``reference``, the use case
    before the change) that are gone or retyped, and changed feature definitions (the champion's
    ``feature_version``: scoring and serving refuse a champion trained on other features)."""
    v = f"champion v{champion.version}"
    now = {f.name: f for f in use_case.features}
    problems: list[str] = []
    for name, kind in champion.inputs.items():
        spec = now.get(name)
        if spec is None:
            problems.append(f"feature {name!r} is removed but {v} reads it")
        elif kind is not None and kind != ("category" if spec.categorical else "numeric"):
            problems.append(
                f"feature {name!r} is retyped: {kind} for {v}, {'category' if spec.categorical else 'numeric'} now"
            )
    changed: list[str] = []
    if reference is not None:
        before = {f.name: f for f in reference.features}
        columns_now = use_case.schema_.columns
        for name in champion.inputs:
            spec = before.get(name)
            if spec is None:
                continue
            for column in spec.inputs:
                old = reference.schema_.columns.get(column)
                new = columns_now.get(column)
                if old is None:
                    continue
                if new is None:
                    problems.append(f"column {column!r} is removed but {v} reads it (feature {name!r})")
                elif new.type != old.type:
                    problems.append(
                        f"column {column!r} is retyped from {old.type} to {new.type} but {v} reads it (feature {name!r})"
                    )
            if name in now and now[name].model_dump(mode="json") != spec.model_dump(mode="json"):
                changed.append(name)
    if champion.feature_version and champion.feature_version != use_case.feature_version:
        which = f": {', '.join(changed)} changed" if changed else ""
        problems.append(
            f"the feature definitions differ from those {v} was trained on (feature version "
            f"{champion.feature_version} -> {use_case.feature_version}{which}); scoring and serving refuse {v} "
            "until a model trained on the new features is promoted"
        )
    if not problems:
        return [
            Finding(
                "contract",
                "ok",
                f"{v} can still be fed: every feature and column it reads is kept with its type",
            )
        ]
    if expect_retrain:
        note = f" (a retrain is declared with {RETRAIN_FLAG}: train and promote a new model right after the merge)"
        return [Finding("contract", "warning", p + note) for p in problems]
    fix = f"; keep them, or declare the retrain with {RETRAIN_FLAG}"
    return [Finding("contract", "error", p + fix) for p in problems]


# -- the dry-run gate against the production champion -------------------------------------------------


def dry_run_findings(
    use_case: UseCase,
    holdout: pd.DataFrame,
    challenger_scores: np.ndarray,
    baseline_scores: np.ndarray,
    champion_model: Any,
    champion_version: str,
    *,
    expect_retrain: bool,
) -> list[Finding]:
    """The gate's decision (mode ``dry_run``) for the sample model against the production champion
    on the sample holdout. It fails only when the sample model is worse than the champion beyond
    the bootstrap's noise, overall or on a blocking slice: not being clearly better is the normal
    verdict for a change that does not touch the model."""
    from mlops.model.gate import label_range
    from mlops.model.promotion import check_outputs, decide, gather_evidence
    from mlops.model.training import (
        DECISION_THRESHOLD,
        X_y,
        compute_metrics,
        predict_scores,
    )

    spec = use_case.promotion
    v = f"champion v{champion_version}"
    if spec.mode == "disabled":
        return [
            Finding(
                "dry_run", "skipped", "promotion is disabled for this use case: nothing would be promoted"
            )
        ]
    X, y = X_y(holdout, use_case)
    try:
        champion_scores = predict_scores(champion_model, X, use_case.task)
    except (KeyError, ValueError, TypeError) as exc:
        status: Status = "warning" if expect_retrain else "error"
        return [
            Finding(
                "dry_run",
                status,
                f"{v} cannot score the changed features ({type(exc).__name__}: {exc}): the training DAG's gate would stop "
                "and promote nothing; after the merge a person reviews the new model and moves the 'champion' alias",
            )
        ]
    sanity = check_outputs(
        challenger_scores, use_case.task, threshold=DECISION_THRESHOLD, label_range=label_range(use_case)
    )
    metrics = compute_metrics(y, challenger_scores, use_case.task) if sanity.scorable else {}
    comparison = baseline = None
    slices: list[Any] = []
    try:
        if sanity.scorable:
            evidence = gather_evidence(
                use_case, holdout, y, (challenger_scores, baseline_scores, champion_scores)
            )
            baseline, comparison, slices = evidence.baseline, evidence.comparison, evidence.slices
    except ValueError as exc:  # every bootstrap resample degenerate: the sample holdout is too small
        return [
            Finding(
                "dry_run", "warning", f"cannot compare with {v} on the sample holdout ({len(y)} rows): {exc}"
            )
        ]
    decision = decide(
        metrics,
        spec,
        comparison=comparison,
        has_champion=True,
        sanity=sanity,
        baseline=baseline,
        slices=slices,
        mode="dry_run",
    )
    verdict = "would be promoted" if decision.promote else "would not be promoted"
    head = f"against {v} on the sample holdout ({len(y)} rows) the sample model {verdict}: {decision.reason.removeprefix('dry run: ')}"
    worse_slices = [s for s in decision.slices or [] if s.blocking and s.status == "worse_than_champion"]
    if comparison is not None and comparison.ci_high < 0:
        c = comparison
        return [
            Finding(
                "dry_run",
                "error",
                f"the change makes the model worse than {v} on {spec.metric}: {c.challenger:.4f} vs {c.champion:.4f} "
                f"(difference {c.improvement:+.4f}, {c.confidence:.0%} interval [{c.ci_low:+.4f}, {c.ci_high:+.4f}] below 0) - {head}",
            )
        ]
    if worse_slices:
        labels = ", ".join(f"{s.label} ({s.rows} rows)" for s in worse_slices)
        return [
            Finding(
                "dry_run",
                "error",
                f"the change makes the model worse than {v} on blocking slice(s) {labels} - {head}",
            )
        ]
    return [Finding("dry_run", "ok", head)]


def _dry_run(
    use_case: UseCase, frame_path: Path, champion: Champion, report: UseCaseCheck, *, expect_retrain: bool
) -> None:
    import pandas as pd

    from mlops.dev.smoke import BASELINE_SCORE, CHALLENGER_SCORE
    from mlops.model import registry

    frame = pd.read_parquet(frame_path)
    registry.configure_mlflow()
    model = registry.load_model(use_case.registered_model_name, champion.version)
    holdout = frame.drop(columns=[CHALLENGER_SCORE, BASELINE_SCORE])
    report.findings += dry_run_findings(
        use_case,
        holdout,
        frame[CHALLENGER_SCORE].to_numpy(),
        frame[BASELINE_SCORE].to_numpy(),
        model,
        champion.version,
        expect_retrain=expect_retrain,
    )


# -- one use case, all use cases, the report ----------------------------------------------------------


@dataclass(frozen=True)
class CheckOptions:
    config_dir: Path
    feature_repo: Path
    since: str | None = None
    expect_retrain: bool = False
    smoke: bool = True
    smoke_timeout: float = SMOKE_TIMEOUT_SECONDS
    # Empty databases the smoke run copies instead of migrating anew (None: always migrate).
    cache_dir: Path | None = None


def sample_day(use_case: UseCase) -> dt.date:
    """The day of the static sample: the smoke run's last day."""
    from mlops.dev.smoke import smoke_days

    return smoke_days(use_case, dt.datetime.now(dt.UTC).date())[-1]


def check_use_case(name: str, reasons: list[str], options: CheckOptions, settings: Settings) -> UseCaseCheck:
    started = time.monotonic()
    report = UseCaseCheck(name, reasons)
    path = options.config_dir / "use_cases" / f"{name}.yaml"
    if not path.exists():
        if any(r == f"use_cases/{name}.yaml" for r in reasons):
            report.add("config", "skipped", f"use_cases/{name}.yaml was removed: its DAGs go with it")
        else:
            report.add("config", "error", f"no use case named {name!r}: {path} does not exist")
        return report
    use_case = check_config(path, report)
    if use_case is None:
        report.seconds = time.monotonic() - started
        return report
    check_suites(use_case, options.config_dir, report)
    batch = check_sample(use_case, options.config_dir, sample_day(use_case), report)
    if batch is not None:
        check_features(use_case, batch, report)
    champion = _contract(use_case, options, settings, report)
    if not options.smoke:
        report.add("smoke", "skipped", "not run (--no-smoke)")
    elif report.failed:
        report.add("smoke", "skipped", "not run: fix the errors above first")
    else:
        _smoke(use_case, path, options, champion, report)
    report.seconds = time.monotonic() - started
    return report


def _contract(
    use_case: UseCase, options: CheckOptions, settings: Settings, report: UseCaseCheck
) -> Champion | None:
    """The contract check; the production champion, if there is one to compare with."""
    from mlflow.exceptions import MlflowException

    location = registry_location(settings)
    if location is None:
        report.add(
            "contract",
            "skipped",
            "no model registry is configured (MLFLOW_TRACKING_URI): nothing in production to compare with",
        )
        return None
    try:
        champion = production_champion(use_case)
    except (MlflowException, OSError) as exc:  # fail closed: a registry that cannot answer fails the check
        report.add(
            "contract", "error", f"could not read the registry at {location}: {type(exc).__name__}: {exc}"
        )
        return None
    if champion is None:
        report.add(
            "contract",
            "skipped",
            f"{use_case.registered_model_name} has no champion yet: nothing in production to break",
        )
        return None
    reference = reference_use_case(options.config_dir, use_case.name, options.since or "HEAD")
    report.findings += contract_findings(use_case, champion, reference, expect_retrain=options.expect_retrain)
    return champion


def _smoke(
    use_case: UseCase, path: Path, options: CheckOptions, champion: Champion | None, report: UseCaseCheck
) -> None:
    from mlops.dev.smoke import run_smoke

    with tempfile.TemporaryDirectory(prefix=f"mlops-check-{use_case.name}-") as tmp:
        result = run_smoke(
            path,
            options.config_dir,
            options.feature_repo,
            Path(tmp),
            timeout=options.smoke_timeout,
            cache=options.cache_dir,
        )
        for step in result["steps"]:
            report.add(step["check"], step["status"], f"{step['message']} ({step['seconds']:.0f} s)")
        frame = result.get("dry_run_frame")
        if champion is None:
            report.add("dry_run", "skipped", "no production champion to compare the sample model with")
        elif frame is None:
            report.add("dry_run", "skipped", "not run: the smoke run trained no model")
        else:
            _dry_run(use_case, Path(frame), champion, report, expect_retrain=options.expect_retrain)


def select_use_cases(
    names: Sequence[str], options: CheckOptions, platform_dirs: Sequence[Path]
) -> dict[str, list[str]]:
    """The use cases to check and why: the named ones, else those changed since ``--since``, else all."""
    if names:
        return {name: ["named"] for name in names}
    if options.since:
        changed = changed_paths(options.config_dir, options.since)
        return touched_use_cases(
            changed,
            config_dir=options.config_dir,
            feature_repo=options.feature_repo,
            platform_dirs=platform_dirs,
        )
    return {p.stem: ["all"] for p in sorted((options.config_dir / "use_cases").glob("*.yaml"))}


def render_report(checks: Sequence[UseCaseCheck], *, since: str | None) -> str:
    """The markdown report: a summary table, then each use case's findings."""
    lines = ["## Use-case check", ""]
    if not checks:
        scope = f"since `{since}`" if since else "in this change"
        return "\n".join([*lines, f"No use case is touched {scope}: nothing to check.", ""])
    failed = [c for c in checks if c.failed]
    lines.append(
        f"**{len(failed)} of {len(checks)} use case(s) failed.**"
        if failed
        else f"**All {len(checks)} use case(s) passed.**"
    )
    lines += ["", "| use case | result | checked because | time |", "|---|---|---|---|"]
    for c in checks:
        result = f"{ICON['error']} failed" if c.failed else f"{ICON['ok']} passed"
        lines.append(f"| `{c.name}` | {result} | {', '.join(c.reasons)} | {c.seconds:.0f} s |")
    for c in checks:
        lines += ["", f"### `{c.name}`", ""]
        for f in c.findings:
            lines.append(f"- {ICON[f.status]} **{f.check}**: {_one_line(f.message)}")
    lines += [
        "",
        'What each check means and how to fix a failure: docs/operations.md, "Changing a use case".',
        "",
    ]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def run_checks(
    names: Sequence[str], options: CheckOptions, *, platform_dirs: Sequence[Path] | None = None
) -> list[UseCaseCheck]:
    """Check the selected use cases; each with every check that applies."""
    from mlops.core.settings import load_settings, project_root

    settings = load_settings()
    if platform_dirs is None:
        platform_dirs = [project_root() / "include" / "mlops", project_root() / "dags"]
    selected = select_use_cases(names, options, platform_dirs)
    return [check_use_case(name, reasons, options, settings) for name, reasons in sorted(selected.items())]
