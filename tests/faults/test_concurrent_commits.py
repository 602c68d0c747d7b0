"""Two runs of the same day (a manual run beside the scheduled one) commit it at the same moment:
the day ends up holding one delivery's features, labels and manifest, never a mix, and a reader
reading all along sees one delivery whole, never a mix and never a file its manifest did not commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.feature_store import ParquetFeatureStore, Rows, frame_hash
from mlops.data.features import build_features, extract_labels
from mlops.dev.simulator import simulate_batch

pytestmark = pytest.mark.faults
UC, DAY = "churn", dt.date(2026, 5, 4)
ROUNDS = 50
PART_ROWS = 60


@functools.cache
def deliveries() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Three deliveries of the day (different rows and values), as features and labels."""
    uc, out = get_use_case(UC), {}
    for i, rows in enumerate((240, 300, 270)):
        batch = simulate_batch(UC, DAY - dt.timedelta(days=i), rows)
        batch["event_time"] = batch["event_time"] + pd.Timedelta(days=i)
        out[f"delivery-{i}"] = (build_features(batch, uc), extract_labels(batch, uc))
    return out


def parts(features: pd.DataFrame, labels: pd.DataFrame) -> Iterator[tuple[Rows, Rows]]:
    """The day in parts, as the checks stage them: the two writers' writes overlap."""
    for start in range(0, len(features), PART_ROWS):
        end = start + PART_ROWS
        yield Rows.of(features.iloc[start:end]), Rows.of(labels.iloc[start:end])
        time.sleep(0.001)


def commit(root: str, name: str, start_at: float) -> str:
    """One run's commit of delivery ``name`` through the store, from ``start_at`` (a wall-clock time)."""
    features, labels = deliveries()[name]
    store = ParquetFeatureStore(Lake(root))
    time.sleep(max(0.0, start_at - time.time()))
    store.write_partition_parts(UC, DAY, parts(features, labels), "v1", with_labels=True)
    return name


def expected(tmp_path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """Each delivery's manifest as committed alone, in the same parts (file names are hashes of
    the bytes: the same in any lake),
    and which delivery each pair of (features, labels) content hashes is."""
    manifests, pairs = {}, {}
    for name, (features, labels) in deliveries().items():
        lake = Lake(f"file://{tmp_path / 'reference' / name}")
        ParquetFeatureStore(lake).write_partition_parts(
            UC, DAY, parts(features, labels), "v1", with_labels=True
        )
        manifests[name] = lake.read_json(layout.feature_manifest(UC, DAY))
        pairs[(frame_hash(features), frame_hash(labels))] = name
    return manifests, pairs


class Reader(threading.Thread):
    """Reads the day over and over while the writers commit; records what each read saw."""

    def __init__(self, root: str, pairs: dict[tuple[str, str], str]) -> None:
        super().__init__(daemon=True)
        self.store = ParquetFeatureStore(Lake(root))
        self.pairs = pairs
        self.stop = threading.Event()
        self.seen: list[str] = []
        self.mixes: list[str] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                day = self.store.read_day(UC, DAY)
                features = self.store.read_features(UC, DAY, DAY)
                labels = self.store.read_labels(UC, DAY, DAY)
            except BaseException as exc:  # recorded: the test fails on it
                self.errors.append(exc)
                return
            if day is None:
                continue
            assert day.labels is not None
            pair = (frame_hash(day.features), frame_hash(day.labels))
            if pair not in self.pairs or day.manifest["content_hash"] != pair[0]:
                self.mixes.append(
                    f"read_day: features {pair[0][:8]}, labels {pair[1][:8]}, manifest {day.manifest}"
                )
            self.seen.append(self.pairs.get(pair, "mix"))
            if frame_hash(features) not in {f for f, _ in self.pairs}:
                self.mixes.append(f"read_features: {len(features)} rows of no single delivery")
            if frame_hash(labels) not in {lb for _, lb in self.pairs}:
                self.mixes.append(f"read_labels: {len(labels)} rows of no single delivery")


def check_day(
    tmp_path: Path, store: ParquetFeatureStore, manifests: dict[str, Any], pair: tuple[str, str]
) -> None:
    record = store.lake.read_json(layout.feature_manifest(UC, DAY))
    winner = next((name for name, m in manifests.items() if m == record), None)
    assert winner in pair, f"the day's manifest is neither {pair[0]}'s nor {pair[1]}'s: {record}"
    for kind in ("features", "labels"):
        folder = tmp_path / "lake" / layout.store_day_dir(kind, UC, DAY)  # type: ignore[arg-type]
        assert sorted(p.name for p in folder.iterdir()) == [Path(record["files"][kind]["path"]).name], (
            f"{kind}: the day's folder holds other files than its commit's"
        )
    assert not store.lake.exists(layout.label_manifest(UC, DAY))
    day = store.read_day(UC, DAY)
    assert day is not None and day.labels is not None
    features, labels = deliveries()[winner]
    pd.testing.assert_frame_equal(day.features, features)
    pd.testing.assert_frame_equal(day.labels, labels)


def rounds() -> Iterator[tuple[str, str]]:
    """Every ordered pair of two deliveries in turn: a round's two commits may both replace the
    day, or one of them may find its delivery already committed."""
    names = sorted(deliveries())
    pairs = [(a, b) for a in names for b in names if a != b]
    for r in range(ROUNDS):
        yield pairs[r % len(pairs)]


def test_two_concurrent_commits_of_a_day_leave_one_delivery_whole(tmp_path: Path) -> None:
    manifests, pairs = expected(tmp_path)
    root = f"file://{tmp_path / 'lake'}"
    store = ParquetFeatureStore(Lake(root))
    reader = Reader(root, pairs)
    reader.start()
    winners = []
    try:
        for pair in rounds():
            start_at = time.time() + 0.01
            threads = [threading.Thread(target=commit, args=(root, name, start_at)) for name in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            check_day(tmp_path, store, manifests, pair)
            winners.append(store.read_day(UC, DAY).manifest["content_hash"])  # type: ignore[union-attr]
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    assert not reader.errors, f"a reader failed while the day was committed: {reader.errors[0]!r}"
    assert not reader.mixes, reader.mixes[:3]
    assert len(set(reader.seen)) >= 2, "the reader never saw a commit replace another: no race was run"
    assert len(set(winners)) == 3


def test_two_processes_committing_a_day_leave_one_delivery_whole(tmp_path: Path) -> None:
    manifests, pairs = expected(tmp_path)
    root = f"file://{tmp_path / 'lake'}"
    store = ParquetFeatureStore(Lake(root))
    reader = Reader(root, pairs)
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        list(pool.map(commit, [root, root], sorted(pairs.values())[:2], [0.0, 0.0]))  # workers warm
        reader.start()
        try:
            for pair in list(rounds())[:15]:
                start_at = time.time() + 0.05
                list(pool.map(commit, [root, root], pair, [start_at, start_at], timeout=60))
                check_day(tmp_path, store, manifests, pair)
        finally:
            reader.stop.set()
            reader.join(timeout=60)
    assert not reader.errors, f"a reader failed while the day was committed: {reader.errors[0]!r}"
    assert not reader.mixes, reader.mixes[:3]


def test_the_day_lock_on_s3_admits_one_holder_and_breaks_only_an_expired_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        keys = {
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "region_name": "us-east-1",
        }
        boto3.client("s3", endpoint_url=url, **keys).create_bucket(Bucket="locks")
        extra = {"endpoint_url": url, "region_name": "us-east-1"}
        conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_LOCK_LAKE", json.dumps(conn))
        lake, rel = Lake("s3://lock_lake@locks/lake"), layout.store_lock(UC, DAY)
        inside, overlaps, errors = [0], [], []

        def hold() -> None:
            try:
                for _ in range(5):
                    # A generous wait: the test is about exclusion, not speed, and a loaded CI
                    # machine can make the S3 stand-in slow to answer.
                    with lake.lock(rel, wait=600):
                        inside[0] += 1
                        overlaps.append(inside[0])
                        time.sleep(0.01)
                        inside[0] -= 1
            except Exception as exc:  # reported below: a thread's error is not lost in its thread
                errors.append(repr(exc))

        threads = [threading.Thread(target=hold) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=900)
        assert errors == []
        assert len(overlaps) == 15 and max(overlaps) == 1
        assert not lake.exists(rel)  # released

        # A holder that died (its lease ran out) does not keep the day locked; a live one does.
        assert lake.create(rel, json.dumps({"token": "dead", "expires": time.time() - 1}).encode())
        with lake.lock(rel, wait=120):
            assert lake.read_json(rel)["token"] != "dead"
        assert lake.create(rel, json.dumps({"token": "alive", "expires": time.time() + 60}).encode())
        with pytest.raises(TimeoutError, match="still held by another writer"), lake.lock(rel, wait=0.5):
            pass
        assert lake.read_json(rel)["token"] == "alive"
    finally:
        server.stop()
