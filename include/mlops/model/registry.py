"""MLflow tracking and the model registry: experiments, versions, aliases and promotion history.

Production is the ``champion`` alias of ``<use_case>_model``. The version it replaced keeps
``previous_champion`` (one-step rollback); a version that was judged and not promoted gets
``challenger``. Every decision is appended to ``registry/<use_case>/promotions/`` in the lake
and tagged on the model version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core import layout
from mlops.core.results import CHAMPION_OUTCOMES, ROLLBACK_OUTCOMES, Cause, Outcome, PromotionRecord
from mlops.model import tags

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous_champion"
CHALLENGER = "challenger"


def configure_mlflow() -> Any:
    """Point MLflow at the configured tracking server / store; return an MlflowClient."""
    import mlflow
    from mlflow import MlflowClient

    from mlops.core.settings import load_settings

    settings = load_settings()
    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(settings.mlflow_tracking_uri.removeprefix("sqlite:///")), exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def ensure_experiment(client: Any, use_case: UseCase) -> str:
    from mlops.core.settings import load_settings

    exp = client.get_experiment_by_name(use_case.experiment_name)
    if exp is not None:
        return exp.experiment_id
    artifacts = load_settings().mlflow_artifacts_uri
    location = f"{artifacts.rstrip('/')}/{use_case.name}" if artifacts else None
    try:
        return client.create_experiment(
            use_case.experiment_name, artifact_location=location, tags={tags.USE_CASE: use_case.name}
        )
    except Exception:  # created concurrently by another worker
        exp = client.get_experiment_by_name(use_case.experiment_name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit() -> str:
    from mlops.core.settings import load_settings, project_root

    configured = load_settings().git_commit
    if configured:
        return configured

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def alias_version(client: Any, model_name: str, alias: str) -> Any | None:
    """The version holding ``alias``; None only when the registry says the alias or model does not exist.

    Any other error (the tracking server down, a 5xx, a timeout) propagates: "could not check"
    never means "there is no champion".
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if alias_missing(exc):
            return None
        raise


def alias_missing(exc: Exception) -> bool:
    """Whether an MLflow error says the alias (or the whole registered model) does not exist."""
    code = getattr(exc, "error_code", "")
    message = str(exc).lower()
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message


def find_version_for_run(
    client: Any, model_name: str, experiment_id: str, airflow_run: str, training_hash: str
) -> Any | None:
    """The version an earlier try of the same Airflow run registered from the same training set.

    Found through the MLflow run, which carries the Airflow run id and training-set hash from its
    first moment, before anything is registered: a try that died after registering but before
    tagging the version is found too, so a retry never registers a second version. Errors
    propagate: "could not check" is not "not registered".
    """
    runs = client.search_runs(
        [experiment_id],
        filter_string=tags.search_filter(
            {tags.AIRFLOW_RUN_ID: airflow_run, tags.TRAINING_SET_HASH: training_hash}
        ),
        order_by=["attributes.start_time ASC"],
    )
    for run in runs:
        versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'")
        if versions:
            return min(versions, key=lambda v: int(v.version))
    return None


def tag_version(client: Any, model_name: str, version: str, values: dict[str, str]) -> None:
    """Put tags (names from :mod:`mlops.model.tags`) on a model version; a retry sets the same values."""
    for key, value in values.items():
        client.set_model_version_tag(model_name, version, key, value)


@contextlib.contextmanager
def quiet_skops_type_scan() -> Iterator[None]:
    """Silence the warnings skops' type scan raises by touching every attribute of loaded modules.

    skops walks module attributes to resolve types, which trips Airflow's lazy-import shims and
    writes about a thousand DeprecatedImportWarnings into each task log; nothing of ours is
    deprecated. Only warnings attributed to skops' own scanner are dropped.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"skops\.io\._utils")
        yield


# The only modules whose types a model of this platform may contain; kept here, in code, never
# taken from the model's own files.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.")


class UntrustedModel(ValueError):
    """A model version that is not a skops file of trusted types: it is never loaded."""


def trusted_types(untrusted: list[str], what: str) -> list[str]:
    """The types skops asks about, if every one is from a trusted module; else UntrustedModel."""
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_MODULES)]
    if foreign:
        raise UntrustedModel(
            f"{what} contains types outside {', '.join(m.rstrip('.') for m in TRUSTED_MODULES)}: {foreign}"
        )
    return list(untrusted)


def load_model(model_name: str, version: str) -> Any:
    """Load a registered version as a skops file whose types pass :data:`TRUSTED_MODULES`.

    The MLmodel file only says where the model is: a version stored as pickle (or anything but
    skops) is refused before a byte of it is deserialised, and skops' trusted types come from
    the policy in code, not from the model's metadata. Whoever can register a version therefore
    cannot run code on the workers.
    """
    import mlflow
    import yaml

    with quiet_skops_type_scan():  # importing skops scans scipy's ufuncs across every loaded module
        import skops.io

    what = f"model {model_name!r} v{version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}"))
    spec = yaml.safe_load((local / "MLmodel").read_text()) or {}
    flavor = (spec.get("flavors") or {}).get("sklearn") or {}
    fmt, name = flavor.get("serialization_format"), str(flavor.get("pickled_model") or "")
    if fmt != "skops" or not name.endswith(".skops") or "/" in name or name.startswith("."):
        raise UntrustedModel(
            f"{what} is stored as {fmt or 'an unknown format'} ({name or 'no file'}); this platform loads only "
            "skops models, because unpickling runs code. Re-register it with the training DAG."
        )
    path = local / name
    with quiet_skops_type_scan():
        allowed = trusted_types(skops.io.get_untrusted_types(file=path), what)
        return skops.io.load(path, trusted=allowed)


def apply_aliases(
    client: Any, use_case: UseCase, version: str, promote: bool, champion_before: str | None
) -> dict[str, str | None]:
    """Move aliases for a decision taken against ``champion_before``; safe to repeat.

    The champion alias moves in one call, so it is never absent. ``previous_champion`` is set
    first, from the decision's record rather than from the live alias, so a retry after the
    champion already moved still names the model it replaced.
    """
    name = use_case.registered_model_name
    replaced = (
        champion_before if champion_before is not None and str(champion_before) != str(version) else None
    )
    if promote:
        if replaced is not None:
            client.set_registered_model_alias(name, PREVIOUS, replaced)
        client.set_registered_model_alias(name, CHAMPION, version)
        challenger = alias_version(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
    return aliases_after(version, promote, champion_before)


def aliases_after(version: str, promote: bool, champion_before: str | None) -> dict[str, str | None]:
    replaced = (
        champion_before if champion_before is not None and str(champion_before) != str(version) else None
    )
    return {
        "champion": str(version) if promote else champion_before,
        "previous_champion": replaced if promote else None,
    }


def record_decision(lake: Lake, use_case: str, entry: PromotionRecord) -> str:
    return lake.write_json(layout.promotion_record(use_case, entry["decided_at"], entry["version"]), entry)


def promotion_history(lake: Lake, use_case: str) -> list[PromotionRecord]:
    """Every promotion decision for a use case, oldest first."""
    return [lake.read_json(rel) for rel in lake.children(layout.promotions_dir(use_case), ".json")]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def window_end(version: Any) -> dt.date | None:
    """The last day of a version's training window (its ``data_window`` tag, ``start..end``)."""
    window = (version.tags or {}).get(tags.DATA_WINDOW, "")
    try:
        return dt.date.fromisoformat(window.split("..")[-1]) if window else None
    except ValueError:
        return None


class FeatureVersionMismatch(RuntimeError):
    """The model version was trained on other feature definitions or code than the current ones."""


def check_servable(use_case: UseCase, version: Any, *, builder: str, fix: str) -> None:
    """Refuse a model version that today's features cannot feed (batch scoring, the model server, a rollback).

    A version records the feature version it was trained on (its ``feature_version`` tag: every
    feature's definition, columns and code); features built otherwise would feed it inputs it never
    saw. ``builder`` names who builds today's features, ``fix`` what to do.
    """
    trained_on = (version.tags or {}).get(tags.FEATURE_VERSION)
    if trained_on and trained_on != use_case.feature_version:
        raise FeatureVersionMismatch(
            f"v{version.version} was trained on feature version {trained_on}, but {builder} builds features as "
            f"{use_case.feature_version} (a feature or its code changed); {fix}"
        )


class RollbackRefused(ValueError):
    """The requested rollback target does not exist, never earned production, or cannot be served today."""


def rollback(
    use_case: UseCase,
    lake: Lake,
    *,
    version: str,
    reason: str,
    dag_id: str,
    airflow_run_id: str,
    triggered_by: Cause | None = None,
) -> PromotionRecord:
    """Make ``version`` the champion (one alias move), with the reason recorded in the ledger.

    Explicit, not a toggle: running it twice leaves ``version`` the champion and records the
    second run as a no-op, so a repeated rollback never puts the bad model back.
    """
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise RollbackRefused("a rollback needs a reason (it goes into the promotion ledger)")
    client = configure_mlflow()
    name = use_case.registered_model_name
    try:
        target = client.get_model_version(name, version)
    except MlflowException as exc:
        if alias_missing(exc):
            raise RollbackRefused(f"model {name!r} has no version {version!r} to roll back to") from None
        raise
    current = alias_version(client, name, CHAMPION)
    outcome: Outcome
    if current is not None and str(current.version) == str(target.version):
        outcome, note = "rollback_noop", f"v{version} is already the champion; nothing changed"
    else:
        # Only a version that earned production before may get it back without the gate.
        history = promotion_history(lake, use_case.name)
        if not any(
            str(h["version"]) == str(target.version) and h["outcome"] in CHAMPION_OUTCOMES for h in history
        ):
            raise RollbackRefused(
                f"v{target.version} of {name!r} was never the champion (the promotion ledger has no promotion, "
                "approval or rollback to it): a rollback only restores an earlier champion; train it through the "
                "gate instead"
            )
        try:
            check_servable(use_case, target, builder="the platform", fix="it cannot be the champion again")
        except FeatureVersionMismatch as exc:
            raise RollbackRefused(f"cannot roll back to {exc}; retrain on today's features instead") from None
        client.set_registered_model_alias(name, CHAMPION, str(target.version))
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, str(current.version))
        outcome, note = (
            "rollback",
            f"rolled back from v{current.version if current else 'none'} to v{version}",
        )
    entry = PromotionRecord(
        use_case=use_case.name,
        decided_at=now_iso(),
        version=str(target.version),
        champion_before=str(current.version) if current is not None else None,
        outcome=outcome,
        promoted=outcome == "rollback",
        reason=f"{note}: {reason.strip()}",
        airflow_dag_id=dag_id,
        airflow_run_id=airflow_run_id,
    )
    if triggered_by is not None:
        entry["triggered_by"] = triggered_by
    if not any(
        h["airflow_run_id"] == airflow_run_id and h["outcome"] in ROLLBACK_OUTCOMES
        for h in promotion_history(lake, use_case.name)
    ):
        record_decision(lake, use_case.name, entry)
    return entry
