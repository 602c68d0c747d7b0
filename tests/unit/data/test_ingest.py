from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlops.core import layout
from mlops.core.lake import Lake, sha256
from mlops.data.ingest import archive_batch, read_archived

DAY = dt.date(2026, 1, 3)


def test_archive_is_idempotent_and_keeps_superseded_batches(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    first = archive_batch(lake, "churn", DAY, b"v1,data\n", "csv", "test", "t1")
    again = archive_batch(lake, "churn", DAY, b"v1,data\n", "csv", "test", "t2")
    assert again == first  # same bytes: nothing rewritten
    archive_batch(lake, "churn", DAY, b"v2,data\n", "csv", "test", "t3")
    data, manifest = read_archived(lake, "churn", DAY)
    assert data == b"v2,data\n" and manifest["sha256"] == sha256(data)
    old = lake.read_bytes(layout.raw_superseded("churn", DAY, first["sha256"], "csv"))
    assert old == b"v1,data\n"
