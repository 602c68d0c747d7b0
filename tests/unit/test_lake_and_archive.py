from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from mlops.core.config import load_use_cases
from mlops.core.lake import Lake, sha256
from mlops.data.ingest import archive_batch, read_archived
from mlops.data.validation import derive_suite

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 1, 3)


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    lake.write_bytes("a/b.bin", b"one")
    lake.write_bytes("a/b.bin", b"two")
    assert lake.read_bytes("a/b.bin") == b"two"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]


def test_archive_is_idempotent_and_keeps_superseded_batches(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    first = archive_batch(lake, "churn", DAY, b"v1,data\n", "csv", "test", "t1")
    again = archive_batch(lake, "churn", DAY, b"v1,data\n", "csv", "test", "t2")
    assert again == first  # same bytes: nothing rewritten
    archive_batch(lake, "churn", DAY, b"v2,data\n", "csv", "test", "t3")
    data, manifest = read_archived(lake, "churn", DAY)
    assert data == b"v2,data\n" and manifest["sha256"] == sha256(data)
    old = lake.read_bytes(f"raw/churn/{DAY}/_superseded/{first['sha256']}.csv")
    assert old == b"v1,data\n"


def test_stored_suites_match_the_configs() -> None:
    good, _ = load_use_cases(ROOT / "config")
    for name, use_case in good.items():
        stored = json.loads((ROOT / "config/expectations" / f"{name}.json").read_text())
        assert stored == derive_suite(use_case), f"run `python -m mlops suites` for {name}"
