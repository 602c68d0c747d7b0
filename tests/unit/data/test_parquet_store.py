"""The Parquet feature store commits a day once, whole: one manifest names the day's files with their
hashes, readers read only what it names and check it, and a day of the earlier layout still reads."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.feature_store import ParquetFeatureStore, label_manifest
from mlops.data.feature_store.base import partition_manifest
from mlops.data.feature_store.hashing import FrameHash
from mlops.data.feature_store.parquet import PartitionMismatch
from mlops.data.features import build_features, extract_labels
from mlops.dev.simulator import simulate_batch

DAY = dt.date(2026, 4, 7)
UC = "churn"


def delivery(rows: int, seed_day: dt.date = DAY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A day's features and labels; ``seed_day`` varies the values, the day stays ``DAY``."""
    uc = get_use_case(UC)
    batch = simulate_batch(UC, seed_day, rows)
    batch["event_time"] = batch["event_time"] - pd.Timestamp(seed_day) + pd.Timestamp(DAY)
    return build_features(batch, uc), extract_labels(batch, uc)


def day_files(tmp_path: Path, kind: str) -> list[str]:
    """Every file under the day's folder of ``kind``, hidden ones included."""
    folder = tmp_path / layout.store_day_dir(kind, UC, DAY)  # type: ignore[arg-type]
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_day_commits_with_one_manifest_naming_its_files(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    features, labels = delivery(300)
    result = store.write_partition(UC, DAY, features, labels, "v1")

    record = lake.read_json(layout.feature_manifest(UC, DAY))
    assert {k: v for k, v in record.items() if k != "files"} == result
    assert set(record["files"]) == {"features", "labels"}
    for kind, frame in (("features", features), ("labels", labels)):
        file = record["files"][kind]
        data = lake.read_bytes(file["path"])
        assert file["sha256"] == hashlib.sha256(data).hexdigest() and file["bytes"] == len(data)
        assert file["path"] == layout.store_file(kind, UC, DAY, file["sha256"])  # type: ignore[arg-type]
        assert file["rows"] == len(frame)
        assert day_files(tmp_path, kind) == [f"{file['sha256']}.parquet"]  # nothing half-written left
    assert not lake.exists(layout.label_manifest(UC, DAY))  # one manifest commits both
    assert store.committed_files(UC, DAY) == {k: f["path"] for k, f in record["files"].items()}
    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), features)
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), labels)
    day = store.read_day(UC, DAY)
    assert day is not None and day.manifest == result and day.labels is not None
    pd.testing.assert_frame_equal(day.features, features)
    pd.testing.assert_frame_equal(pd.concat(store.iter_features(UC, DAY, 64), ignore_index=True), features)


def test_a_new_delivery_replaces_the_day_whole_and_its_old_files_go(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    first, second = delivery(200), delivery(250, DAY - dt.timedelta(days=3))
    store.write_partition(UC, DAY, *first)
    old = store.committed_files(UC, DAY)
    store.write_partition(UC, DAY, *second)

    new = store.committed_files(UC, DAY)
    assert set(new) == {"features", "labels"} and not set(new.values()) & set(old.values())
    assert not any(lake.exists(path) for path in old.values())
    for kind in ("features", "labels"):
        assert day_files(tmp_path, kind) == [Path(new[kind]).name]
    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), second[0])
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), second[1])


def test_committing_the_same_delivery_again_changes_nothing(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    features, labels = delivery(200)
    first = store.write_partition(UC, DAY, features, labels, "v1")
    manifest = lake.read_bytes(layout.feature_manifest(UC, DAY))
    files = {p: (tmp_path / p).stat().st_ino for p in store.committed_files(UC, DAY).values()}

    assert store.write_partition(UC, DAY, features, labels, "v1") == first
    assert lake.read_bytes(layout.feature_manifest(UC, DAY)) == manifest
    assert {p: (tmp_path / p).stat().st_ino for p in files} == files  # not even rewritten
    assert day_files(tmp_path, "features") == [Path(next(iter(files))).name]


@pytest.mark.parametrize("kind", ["features", "labels"])
def test_a_file_changed_after_its_commit_fails_the_read_loudly(tmp_path: Path, kind: str) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    store.write_partition(UC, DAY, *delivery(200))
    other, _ = delivery(200, DAY - dt.timedelta(days=1))
    path = store.committed_files(UC, DAY)[kind]
    lake.write_with(path, lambda fh: other.to_parquet(fh, index=False))  # a valid file, other rows

    read = store.read_features if kind == "features" else store.read_labels
    with pytest.raises(
        PartitionMismatch, match=f"the {kind} of {DAY} .* not what the day's manifest committed"
    ):
        read(UC, DAY, DAY)
    with pytest.raises(PartitionMismatch):
        store.read_day(UC, DAY)
    if kind == "features":
        with pytest.raises(PartitionMismatch):
            next(iter(store.iter_features(UC, DAY, 50)))


def _write_earlier_layout(lake: Lake, features: pd.DataFrame, labels: pd.DataFrame | None) -> None:
    """A day as the store wrote it before manifests named their files."""
    lake.write_with(
        layout.store_partition("features", UC, DAY), lambda fh: features.to_parquet(fh, index=False)
    )
    hashed = FrameHash()
    hashed.update(features)
    label_hash = None
    if labels is not None:
        lake.write_with(
            layout.store_partition("labels", UC, DAY), lambda fh: labels.to_parquet(fh, index=False)
        )
        label_hash = FrameHash()
        label_hash.update(labels)
        lake.write_json(layout.label_manifest(UC, DAY), label_manifest(UC, DAY, labels))
    lake.write_json(layout.feature_manifest(UC, DAY), partition_manifest(UC, DAY, hashed, label_hash, "v0"))


def test_a_day_of_the_earlier_layout_reads_and_the_next_commit_replaces_it(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    features, labels = delivery(150)
    _write_earlier_layout(lake, features, labels)

    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), features)
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), labels)
    pd.testing.assert_frame_equal(pd.concat(store.iter_features(UC, DAY, 40), ignore_index=True), features)
    assert store.partitions(UC)[DAY]["feature_version"] == "v0"
    day = store.read_day(UC, DAY)
    assert day is not None and day.labels is not None and len(day.labels) == len(labels)

    new_features, new_labels = delivery(180, DAY - dt.timedelta(days=2))
    store.write_partition(UC, DAY, new_features, new_labels, "v1")
    for kind in ("features", "labels"):
        assert not lake.exists(layout.store_partition(kind, UC, DAY))  # type: ignore[arg-type]
    assert not lake.exists(layout.label_manifest(UC, DAY))  # the labels now come with the features
    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), new_features)
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), new_labels)


def test_a_label_feed_day_keeps_its_labels_when_its_features_are_committed(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    features, labels = delivery(120)
    _write_earlier_layout(lake, features, labels)  # the earlier layout's label manifest: a label feed's
    lake.write_json(
        layout.feature_manifest(UC, DAY), lake.read_json(layout.feature_manifest(UC, DAY)) | {"label_rows": 0}
    )

    store.write_partition(UC, DAY, features, None, "v1")  # a batch without labels
    assert lake.exists(layout.store_partition("labels", UC, DAY))
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), labels)

    relabelled = labels.assign(label=1 - labels["label"])
    store.write_labels(UC, DAY, relabelled)  # the label feed's next delivery of the day
    record = lake.read_json(layout.label_manifest(UC, DAY))
    assert list(record["files"]) == ["labels"] and lake.exists(record["files"]["labels"]["path"])
    assert not lake.exists(layout.store_partition("labels", UC, DAY))
    assert day_files(tmp_path, "labels") == [Path(record["files"]["labels"]["path"]).name]
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), relabelled)
    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), features)


class RecommittingLake(Lake):
    """A lake on which another run commits the day again just as a reader opens a day's file."""

    def __init__(self, root_uri: str, recommit: Any) -> None:
        super().__init__(root_uri)
        self.recommit = recommit

    def read_bytes(self, rel: str) -> bytes:
        if self.recommit is not None and rel.startswith(layout.store_day_dir("features", UC, DAY)):
            recommit, self.recommit = self.recommit, None
            recommit()
        return super().read_bytes(rel)


def test_a_reader_whose_files_were_replaced_meanwhile_reads_the_new_commit(tmp_path: Path) -> None:
    first, second = delivery(100), delivery(140, DAY - dt.timedelta(days=5))
    writer = ParquetFeatureStore(Lake(f"file://{tmp_path}"))
    writer.write_partition(UC, DAY, *first)
    reader = ParquetFeatureStore(
        RecommittingLake(f"file://{tmp_path}", lambda: writer.write_partition(UC, DAY, *second))
    )
    day = reader.read_day(UC, DAY)
    assert day is not None and day.labels is not None
    pd.testing.assert_frame_equal(day.features, second[0])
    pd.testing.assert_frame_equal(day.labels, second[1])


class FailingManifestLake(Lake):
    def write_bytes(self, rel: str, data: bytes) -> str:
        if rel == layout.feature_manifest(UC, DAY):
            raise OSError(5, "Input/output error", rel)
        return super().write_bytes(rel, data)


def test_a_commit_that_fails_leaves_the_previous_one_whole_and_the_lock_free(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    first, second = delivery(100), delivery(130, DAY - dt.timedelta(days=4))
    store.write_partition(UC, DAY, *first)
    committed = store.committed_files(UC, DAY)

    with pytest.raises(OSError, match="Input/output error"):
        ParquetFeatureStore(FailingManifestLake(f"file://{tmp_path}")).write_partition(UC, DAY, *second)
    assert store.committed_files(UC, DAY) == committed
    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), first[0])
    pd.testing.assert_frame_equal(store.read_labels(UC, DAY, DAY), first[1])
    assert not any(name.startswith(".") for name in day_files(tmp_path, "features"))

    store.write_partition(UC, DAY, *second)  # the retry takes the lock and commits
    pd.testing.assert_frame_equal(store.read_features(UC, DAY, DAY), second[0])
    assert day_files(tmp_path, "features") == [Path(store.committed_files(UC, DAY)["features"]).name]


def test_the_day_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    rel = layout.store_lock(UC, DAY)
    inside, overlaps = [0], []

    def hold() -> None:
        for _ in range(20):
            with lake.lock(rel, wait=30):
                inside[0] += 1
                overlaps.append(inside[0])
                threading.Event().wait(0.001)
                inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlaps) == 80 and max(overlaps) == 1

    with (
        lake.lock(rel),
        pytest.raises(TimeoutError, match="still held by another writer"),
        lake.lock(rel, wait=0.2),
    ):
        pass
    with pytest.raises(RuntimeError, match="boom"), lake.lock(rel):
        raise RuntimeError("boom")
    with lake.lock(rel, wait=0.2):  # released by the error above
        pass
