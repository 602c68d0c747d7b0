"""The served model follows the champion alias, and keeps serving what it has when it cannot."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from mlops.serving.champion import ServedModel


@dataclass
class Entry:
    version: str
    run_id: str = "run"


class Registry:
    """A stand-in registry: which version holds the alias, which versions load, and an outage switch."""

    def __init__(self) -> None:
        self.champion: str | None = "1"
        self.down = False
        self.broken: set[str] = set()
        self.loads: list[str] = []

    def resolve(self) -> Entry | None:
        if self.down:
            raise ConnectionError("registry unreachable")
        return Entry(self.champion) if self.champion else None

    def load(self, entry: Entry) -> Any:
        version = entry.version
        self.loads.append(version)
        if version in self.broken:
            raise ValueError(f"v{version} is not a skops file")
        return f"model-{version}"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def served(registry: Registry, clock: Clock) -> ServedModel:
    return ServedModel(
        "churn_model", resolve=registry.resolve, load=registry.load, refresh_seconds=1, clock=clock
    )


def test_nothing_is_served_before_the_first_refresh(served: ServedModel) -> None:
    assert served.current is None
    assert served.status()["status"] == "unavailable"


def test_a_promotion_and_a_rollback_swap_the_model(served: ServedModel, registry: Registry) -> None:
    assert served.refresh().model == "model-1"
    registry.champion = "2"
    assert served.refresh().model == "model-2"
    registry.champion = "1"
    assert served.refresh().model == "model-1"
    assert registry.loads == ["1", "2", "1"]
    status = served.status()
    assert (status["status"], status["version"], status["run_id"], status["problem"]) == (
        "ok",
        "1",
        "run",
        None,
    )


def test_an_unchanged_alias_loads_nothing(served: ServedModel, registry: Registry) -> None:
    served.refresh()
    served.refresh()
    assert registry.loads == ["1"]


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    served: ServedModel, registry: Registry
) -> None:
    served.refresh()
    registry.champion, registry.broken = "2", {"2"}
    assert served.refresh().version == "1"
    status = served.status()
    assert status["status"] == "degraded" and status["version"] == "1"
    assert (
        status["problem"]
        == "champion is v2, but loading it failed (ValueError: v2 is not a skops file); still serving v1"
    )
    registry.broken = set()  # e.g. the artifact store is back: the next refresh loads it
    assert served.refresh().version == "2"
    assert served.status()["status"] == "ok"


def test_a_registry_outage_keeps_the_model_and_says_degraded(served: ServedModel, registry: Registry) -> None:
    served.refresh()
    registry.down = True
    assert served.refresh().version == "1"
    assert served.status()["status"] == "degraded"
    assert (
        "could not ask the registry which version is champion: ConnectionError" in served.status()["problem"]
    )
    registry.down = False
    served.refresh()
    assert served.status()["status"] == "ok"


def test_a_registry_outage_at_start_serves_nothing(served: ServedModel, registry: Registry) -> None:
    registry.down = True
    assert served.refresh() is None
    status = served.status()
    assert status["status"] == "unavailable" and "ConnectionError" in status["problem"]


def test_no_champion_serves_nothing_and_says_so(served: ServedModel, registry: Registry) -> None:
    served.refresh()
    registry.champion = None  # the alias was removed: production has no model
    assert served.refresh() is None
    status = served.status()
    assert status["status"] == "unavailable"
    assert (
        status["problem"]
        == "model 'churn_model' has no 'champion' alias: promote a version (the training DAG)"
    )


def test_a_refresh_that_stopped_answering_reads_degraded(served: ServedModel, clock: Clock) -> None:
    served.refresh()
    clock.now += served.stale_after + 1
    status = served.status()
    assert status["status"] == "degraded"
    assert status["problem"].startswith("the champion alias has not been re-resolved for")


def test_the_refresh_thread_survives_an_unexpected_error_and_readiness_turns_stale(
    served: ServedModel, registry: Registry, clock: Clock
) -> None:
    served.refresh()
    assert served.problems() == []
    calls = []

    def resolve_with_a_bug() -> Entry:
        calls.append(1)
        raise KeyError("tags")  # not a registry error: a fault of ours

    served._resolve, served.refresh_seconds = resolve_with_a_bug, 0.01
    served.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 3 and served._thread is not None and served._thread.is_alive()
        assert served.error == "the champion refresh failed (KeyError: 'tags')"
        clock.now += served.stale_after + 1
        (problem,) = served.problems()
        assert problem.startswith(
            f"the champion alias has not been re-resolved for {served.stale_after + 1:.0f}s"
        )
        served._resolve = registry.resolve  # fixed: the same thread follows the champion again
        while served.problems() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert served.problems() == []
    finally:
        served.stop()


def test_the_threshold_is_read_once_when_a_version_is_loaded(registry: Registry, clock: Clock) -> None:
    read: list[str] = []
    thresholds = {"1": 0.3, "2": 0.7}

    def threshold(entry: Entry) -> float:
        read.append(entry.version)
        return thresholds[entry.version]

    served = ServedModel(
        "churn_model", resolve=registry.resolve, load=registry.load, refresh_seconds=1, threshold=threshold,
        clock=clock,
    )  # fmt: skip
    assert served.refresh().threshold == 0.3
    served.refresh()  # the same champion: nothing is read again
    registry.champion = "2"
    assert served.refresh().threshold == 0.7
    assert read == ["1", "2"]
    assert served.status()["decision_threshold"] == 0.7


def test_a_version_whose_threshold_cannot_be_read_is_not_swapped_in(registry: Registry, clock: Clock) -> None:
    def threshold(entry: Entry) -> float:
        if entry.version == "2":
            raise ValueError("model version v2 has decision_threshold='high', not a number in [0, 1]")
        return 0.4

    served = ServedModel(
        "churn_model", resolve=registry.resolve, load=registry.load, refresh_seconds=1, threshold=threshold,
        clock=clock,
    )  # fmt: skip
    served.refresh()
    registry.champion = "2"
    current = served.refresh()
    assert (current.version, current.threshold) == ("1", 0.4)
    assert "decision_threshold='high'" in served.status()["problem"]
