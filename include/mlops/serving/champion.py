"""The served model of a use case, kept in step with the registry's ``champion`` alias.

:meth:`ServedModel.refresh` asks the registry which version holds ``champion`` (the model
server calls it every ``MLOPS_SERVING_REFRESH_SECONDS``). When the alias points elsewhere -
a promotion, a rollback - the new version is loaded completely (through the registry's loader:
skops files of trusted types only) and then swapped in with one assignment; requests in flight
finish on the model they started with. What the refresh cannot do is reported, never guessed:

* the alias does not exist: nothing is served (503) until a champion is promoted;
* the registry cannot be asked (down, 5xx, timeout): the loaded model keeps serving, ``/health``
  says ``degraded`` and why, and the next refresh asks again;
* the new version cannot be loaded (or may not be: trained on other feature definitions than
  this server builds): the loaded one keeps serving, ``degraded``, retried next time.

A refresh that has not succeeded for a while (a registry call hanging) also reads ``degraded``.

:meth:`ServedModel.problems` is what makes the server not ready (``/ready`` 503): nothing to
serve, the refresh thread stopped, the alias not re-resolved for ``stale_after`` seconds, or a
served version that is not the registry's champion (its load failed).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def _registry_errors() -> tuple[type[Exception], ...]:
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError)


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model version and what identifies it in responses and the request log."""

    name: str
    version: str
    run_id: str | None
    model: Any
    loaded_at: str
    # A classifier's decision threshold, read from the version's tags when it was loaded (None: a regressor).
    threshold: float | None = None


class ServedModel:
    """The champion of one use case as the server holds it; see the module docstring.

    ``resolve`` returns the registry entry holding the alias (``.version``, ``.run_id``, ``.tags``)
    or None when there is none; ``load`` loads the model of such an entry; ``threshold`` reads a
    classifier's decision threshold from such an entry (None: the model has none). All are injected
    so the swap logic is tested without MLflow.
    """

    def __init__(
        self,
        model_name: str,
        *,
        resolve: Callable[[], Any | None],
        load: Callable[[Any], Any],
        refresh_seconds: float,
        threshold: Callable[[Any], float | None] = lambda entry: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_name = model_name
        self._resolve, self._load, self._clock = resolve, load, clock
        self._threshold = threshold
        self.refresh_seconds = refresh_seconds
        # A refresh this overdue means the registry calls hang: report it.
        self.stale_after = max(3 * refresh_seconds, 30.0)
        self._current: LoadedModel | None = None
        self._refreshing = threading.Lock()
        self.champion_exists: bool | None = None  # None until the registry has answered once
        self.champion_version: str | None = None  # the version the registry last named champion
        self._failed_version: str | None = None
        self.error: str | None = None
        self.last_check: float | None = None
        self.last_success: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The model to serve now; read it once per request (a refresh may swap it meanwhile)."""
        return self._current

    def refresh(self) -> LoadedModel | None:
        """Re-resolve the alias and swap in its version if it changed; return what is served now."""
        with self._refreshing:
            self.last_check = self._clock()
            try:
                entry = self._resolve()
            except _registry_errors() as exc:
                # The registry refused or could not be reached (MlflowException; requests'
                # connection errors and timeouts are OSErrors): that says nothing about which
                # version is champion, so the loaded model keeps serving and /health reports it.
                # Any other error is a fault of ours: it propagates (the refresh thread logs it and
                # goes on), and /ready turns 503 once the alias has not been re-resolved for a while.
                self.error = (
                    f"could not ask the registry which version is champion: {type(exc).__name__}: {exc}"
                )
                log.warning("%s: %s", self.model_name, self.error)
                return self._current
            self.last_success = self.last_check
            if entry is None:
                if self._current is not None:
                    log.error(
                        "%s: the champion alias is gone; no longer serving v%s",
                        self.model_name,
                        self._current.version,
                    )
                self.champion_exists, self.champion_version, self._current, self.error = (
                    False,
                    None,
                    None,
                    None,
                )
                return None
            self.champion_exists = True
            version = str(entry.version)
            self.champion_version = version
            current = self._current
            if current is not None and current.version == version:
                self.error = None
                return current
            try:
                model = self._load(entry)
                threshold = self._threshold(entry)  # a bad threshold tag is a failed load
            except Exception as exc:
                # Loading fails in many ways (download, an untrusted or corrupt file, a missing
                # type); whatever the cause, the loaded model keeps serving and /health says why.
                serving = f"still serving v{current.version}" if current else "nothing is served"
                self.error = (
                    f"champion is v{version}, but loading it failed ({type(exc).__name__}: {exc}); {serving}"
                )
                if self._failed_version != version:  # the traceback once; each retry in one line
                    log.exception("%s: %s", self.model_name, self.error)
                else:
                    log.error("%s: %s", self.model_name, self.error)
                self._failed_version = version
                return current
            self._failed_version = None
            loaded = LoadedModel(
                name=self.model_name,
                version=version,
                run_id=getattr(entry, "run_id", None),
                model=model,
                loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                threshold=threshold,
            )
            self._current, self.error = loaded, None  # the swap: one assignment
            log.info(
                "%s: now serving v%s (was %s)",
                self.model_name,
                version,
                f"v{current.version}" if current else "nothing",
            )
            return loaded

    def start(self) -> None:
        """Refresh every ``refresh_seconds`` in a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"refresh-{self.model_name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception as exc:
                # Not the registry's expected errors (those are handled in refresh): a fault of
                # ours. The thread goes on, so a fix in the registry is followed; meanwhile
                # last_success does not advance and /ready turns 503 once it is stale.
                self.error = f"the champion refresh failed ({type(exc).__name__}: {exc})"
                log.exception("%s: %s", self.model_name, self.error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A refresh stuck in a registry call is not waited for: the thread is a daemon.
            self._thread.join(timeout=5)
            self._thread = None

    def problems(self) -> list[str]:
        """Why the server is not ready to serve this model (empty: ready); see the module docstring."""
        now = self._clock()
        current, error = self._current, self.error
        found = []
        if current is None:
            found.append(f"no model to serve: {self.status()['problem']}")
        if self._thread is not None and not self._thread.is_alive():
            found.append(
                f"the champion refresh thread has stopped ({error or 'no error recorded'}): promotions and rollbacks "
                "are no longer followed; restart the server"
            )
        if self.last_success is None or now - self.last_success > self.stale_after:
            since = "never" if self.last_success is None else f"for {now - self.last_success:.0f}s"
            found.append(
                f"the champion alias has not been re-resolved {since} (limit {self.stale_after:g}s): {error or 'no answer yet'}"
            )
        champion = self.champion_version
        if current is not None and champion is not None and current.version != champion:
            found.append(f"serving v{current.version}, but the registry's champion is v{champion}: {error}")
        return found

    def status(self) -> dict[str, Any]:
        """``ok``, ``degraded`` (serving, but something is wrong) or ``unavailable`` (nothing to serve), and why."""
        now = self._clock()
        current = self._current
        problem = self.error
        if problem is None and self.last_success is not None and now - self.last_success > self.stale_after:
            problem = f"the champion alias has not been re-resolved for {now - self.last_success:.0f}s"
        if current is None:
            state = "unavailable"
            if problem is None:
                problem = (
                    f"model {self.model_name!r} has no 'champion' alias: promote a version (the training DAG)"
                    if self.champion_exists is False
                    else "no model loaded yet"
                )
        else:
            state = "degraded" if problem else "ok"
        return {
            "status": state,
            "model_name": self.model_name,
            "version": current.version if current else None,
            "run_id": current.run_id if current else None,
            "decision_threshold": current.threshold if current else None,
            "loaded_at": current.loaded_at if current else None,
            "seconds_since_check": None if self.last_check is None else round(now - self.last_check, 1),
            "seconds_since_registry_answered": None
            if self.last_success is None
            else round(now - self.last_success, 1),
            "problem": problem,
        }
