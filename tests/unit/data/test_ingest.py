from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.lake import Lake, sha256
from mlops.data import ingest
from mlops.data.ingest import BatchChanged, archive_stream, read_manifest
from tests.unit.data.delivery import archive, archived

DAY = dt.date(2026, 1, 3)
V1, V2 = b"v1,data\n", b"v2,data\n"


def test_archive_is_idempotent_and_keeps_every_delivery(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    first = archive(lake, DAY, V1, received_at="t1")
    again = archive(lake, DAY, V1, received_at="t2")
    assert again == first  # same bytes: nothing rewritten
    second = archive(lake, DAY, V2, received_at="t3")
    assert archived(lake, DAY) == V2 and read_manifest(lake, "churn", DAY)["sha256"] == sha256(V2)
    assert lake.read_bytes(layout.raw_object("churn", DAY, first["sha256"], "csv")) == V1
    assert [s["sha256"] for s in second["superseded"]] == [first["sha256"]]


@pytest.mark.faults
def test_a_retry_after_dying_before_the_manifest_loses_nothing(tmp_path: Path) -> None:
    """The re-delivery's object was written, the task died before moving the pointer, and is retried."""
    lake = Lake(f"file://{tmp_path}")
    first = archive(lake, DAY, V1, received_at="t1")
    lake.write_bytes(layout.raw_object("churn", DAY, sha256(V2), "csv"), V2)  # what the dying try left
    assert archived(lake, DAY) == V1  # readers still see the committed delivery

    archive(lake, DAY, V2, received_at="t2")  # the retry
    assert archived(lake, DAY) == V2
    assert lake.read_bytes(layout.raw_object("churn", DAY, first["sha256"], "csv")) == V1
    assert sorted(lake.list(layout.raw_dir("churn", DAY))) == sorted(
        [f"{sha256(V1)}.csv", f"{sha256(V2)}.csv", layout.MANIFEST]
    )


class _Source:
    """An upstream file, opened afresh on each read; counts the largest read asked of it."""

    def __init__(self, *versions: bytes) -> None:
        self.versions = list(versions)
        self.opened = 0
        self.largest_read = 0

    def __call__(self) -> io.BytesIO:
        data = self.versions[min(self.opened, len(self.versions) - 1)]
        self.opened += 1
        source = self

        class Reader(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                chunk = super().read(size)
                source.largest_read = max(source.largest_read, len(chunk))
                return chunk

        return Reader(data)


def test_a_delivery_is_archived_in_chunks_under_its_hash(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    data = b"customer_id,plan\n" + b"".join(b"%d,basic\n" % i for i in range(3 * ingest.CHUNK_BYTES // 8))
    source = _Source(data)
    manifest = archive_stream(lake, "churn", DAY, source, "csv", "test", "t1")
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["bytes"] == len(data)
    assert archived(lake, DAY) == data
    assert source.largest_read <= ingest.CHUNK_BYTES < len(data)  # never read whole


def test_a_file_changed_while_archived_archives_nothing(tmp_path: Path) -> None:
    """The upstream was still writing: the copy's bytes are not the hashed ones, so the task fails
    and leaves no object, no temporary file and no manifest; the retry archives the final file."""
    lake = Lake(f"file://{tmp_path}")
    half, whole = b"customer_id,plan\n1,basic\n", b"customer_id,plan\n1,basic\n2,premium\n"
    with pytest.raises(BatchChanged, match="changed while it was being archived"):
        archive_stream(lake, "churn", DAY, _Source(half, whole), "csv", "test", "t1")
    assert not lake.exists(layout.raw_manifest("churn", DAY))
    assert [p.name for p in (tmp_path / layout.raw_dir("churn", DAY)).iterdir()] == []  # hidden temps too

    archive_stream(lake, "churn", DAY, _Source(whole), "csv", "test", "t2")
    assert archived(lake, DAY) == whole
