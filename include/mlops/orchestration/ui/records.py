"""Typed readers of the records the platform's tasks already wrote, for the pages.

Nothing is recomputed per view: a page reads the promotion ledger, validation summaries, raw and
prediction manifests, drift summaries and alert records. A page costs a few lake requests, not
one or more per day: each root is listed once (``Lake.list_files``: one recursive listing, with
each file's change token), and a file is read and parsed only when its token differs from the
one this process parsed last (an in-process cache, shared by every request of the API server).

Records returned are shared by the cache: read them, never change them.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mlops.core import layout
from mlops.core.results import DriftSummary, PromotionRecord, RawManifest, ScoringManifest, ValidationSummary

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

CACHE_SIZE = 50_000  # parsed records kept per process (a few KB each)


@dataclass(frozen=True)
class Alert:
    """An alert record (``alerts/<scope>/{outbox,sent}/<id>.json``) and whether it is still open."""

    id: str
    kind: str
    text: str
    queued_at: str
    open: bool
    delivered_to: str | None = None
    report_uri: str | None = None  # a drift alert's report


class _ParsedCache:
    """Parsed JSON by (lake root, path), valid while the listing's change token is the same."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, lake: Lake, rel: str, token: str) -> Any:
        key = (lake.root_uri, rel)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == token:
                self._items.move_to_end(key)
                return hit[1]
        record = json.loads(lake.read_bytes(rel))
        with self._lock:
            self._items[key] = (token, record)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return record

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = _ParsedCache(CACHE_SIZE)


def _per_day(lake: Lake, root: str, leaf: Callable[[str], str]) -> dict[str, Any]:
    """``{day: record}`` for every day folder under ``root`` whose record ``leaf(day)`` exists.

    Two listings whatever the number of days (the day folders, and every file under the root
    with its token); only records new or changed since the last view are read.
    """
    days = lake.list(root)
    files = lake.list_files(root) if days else {}
    out = {}
    for day in days:
        rel = leaf(day)
        if rel in files:
            out[day] = CACHE.read(lake, rel, files[rel])
    return out


def raw_manifests(lake: Lake, use_case: str) -> dict[str, RawManifest]:
    leaf = functools.partial(layout.raw_manifest, use_case)
    return cast("dict[str, RawManifest]", _per_day(lake, layout.raw_root(use_case), leaf))


def validation_summaries(lake: Lake, use_case: str) -> dict[str, ValidationSummary]:
    leaf = functools.partial(layout.validation_summary, use_case)
    return cast("dict[str, ValidationSummary]", _per_day(lake, layout.validation_root(use_case), leaf))


def drift_summaries(lake: Lake, use_case: str) -> dict[str, DriftSummary]:
    leaf = functools.partial(layout.drift_summary, use_case)
    return cast("dict[str, DriftSummary]", _per_day(lake, layout.reports_root(use_case), leaf))


def scoring_manifests(lake: Lake, use_case: str) -> dict[str, ScoringManifest]:
    leaf = functools.partial(layout.predictions_manifest, use_case)
    return cast("dict[str, ScoringManifest]", _per_day(lake, layout.predictions_root(use_case), leaf))


def ledger(lake: Lake, use_case: str) -> list[PromotionRecord]:
    """Every promotion decision, oldest first (record names start with the decision's time)."""
    folder = layout.promotions_dir(use_case) + "/"
    files = lake.list_files(layout.promotions_dir(use_case))
    names = sorted(rel for rel in files if _directly_in(rel, folder) and rel.endswith(".json"))
    return [cast("PromotionRecord", CACHE.read(lake, rel, files[rel])) for rel in names]


def _directly_in(rel: str, folder: str) -> bool:
    """Whether ``rel`` is a file directly in ``folder`` (given with its trailing slash)."""
    return rel.startswith(folder) and "/" not in rel[len(folder) :]


def _alert(record: dict[str, Any], *, open_: bool) -> Alert:
    return Alert(
        id=str(record.get("id", "")),
        kind=str(record.get("kind", "")),
        text=str(record.get("text", "")),
        queued_at=str(record.get("queued_at", "")),
        open=open_,
        delivered_to=record.get("delivered_to"),
        report_uri=(record.get("fields") or {}).get("report_uri"),
    )


BOXES: tuple[layout.AlertBox, ...] = ("outbox", "sent")


def _in_boxes(lake: Lake, files: dict[str, str], scope: str) -> list[Alert]:
    """The alerts of ``scope`` among ``files`` (a listing), read through the cache."""
    found = []
    for box in BOXES:
        folder = layout.alert_box(scope, box) + "/"
        for rel in sorted(files):
            if _directly_in(rel, folder) and rel.endswith(".json"):
                found.append(_alert(CACHE.read(lake, rel, files[rel]), open_=box == "outbox"))
    return found


def alerts(lake: Lake, use_case: UseCase) -> list[Alert]:
    """Drift alerts of the use case and failure alerts of its DAGs, open (outbox) and sent, oldest first."""
    files: dict[str, str] = {}
    for box in BOXES:
        files |= lake.list_files(layout.alert_box(use_case.name, box))
    found = _in_boxes(lake, files, use_case.name)
    dags = [d for d in lake.list(layout.failure_scopes_root()) if d.startswith(use_case.dag_id(""))]
    if dags:
        files = lake.list_files(layout.failure_scopes_root())
        for dag_id in dags:
            found += _in_boxes(lake, files, layout.failure_scope(dag_id))
    return sorted(found, key=lambda a: a.queued_at)


def champion_version(use_case: UseCase) -> tuple[str | None, str | None]:
    """The version holding ``champion`` in the registry, and an error text if MLflow could not say."""
    try:
        from mlops.model import registry

        client = registry.configure_mlflow()
        version = registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION)
    except Exception as exc:  # the page says so in a banner and still shows the ledger's view
        return None, f"MLflow could not be asked for the champion ({type(exc).__name__})"
    return (str(version.version) if version is not None else None), None
