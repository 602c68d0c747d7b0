from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.lake import Lake, sha256
from mlops.data.ingest import archive_batch, read_archived

DAY = dt.date(2026, 1, 3)
V1, V2 = b"v1,data\n", b"v2,data\n"


def test_archive_is_idempotent_and_keeps_every_delivery(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    first = archive_batch(lake, "churn", DAY, V1, "csv", "test", "t1")
    again = archive_batch(lake, "churn", DAY, V1, "csv", "test", "t2")
    assert again == first  # same bytes: nothing rewritten
    second = archive_batch(lake, "churn", DAY, V2, "csv", "test", "t3")
    data, manifest = read_archived(lake, "churn", DAY)
    assert data == V2 and manifest["sha256"] == sha256(V2)
    assert lake.read_bytes(layout.raw_object("churn", DAY, first["sha256"], "csv")) == V1
    assert [s["sha256"] for s in second["superseded"]] == [first["sha256"]]


@pytest.mark.faults
def test_a_retry_after_dying_before_the_manifest_loses_nothing(tmp_path: Path) -> None:
    """The re-delivery's object was written, the task died before moving the pointer, and is retried."""
    lake = Lake(f"file://{tmp_path}")
    first = archive_batch(lake, "churn", DAY, V1, "csv", "test", "t1")
    lake.write_bytes(layout.raw_object("churn", DAY, sha256(V2), "csv"), V2)  # what the dying try left
    assert read_archived(lake, "churn", DAY)[0] == V1  # readers still see the committed delivery

    archive_batch(lake, "churn", DAY, V2, "csv", "test", "t2")  # the retry
    assert read_archived(lake, "churn", DAY)[0] == V2
    assert lake.read_bytes(layout.raw_object("churn", DAY, first["sha256"], "csv")) == V1
    assert sorted(lake.list(layout.raw_dir("churn", DAY))) == sorted([f"{sha256(V1)}.csv", f"{sha256(V2)}.csv", layout.MANIFEST])
