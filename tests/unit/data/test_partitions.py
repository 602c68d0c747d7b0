"""A day checked in partitions gets the verdict, the report and the features of the day checked whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlops.core import layout
from mlops.core.config import UseCase, parse_use_case
from mlops.core.lake import Lake
from mlops.data import partitions
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.ingest import read_manifest
from mlops.data.parsing import read_batch
from mlops.data.tasks import materialize_features, split_batch, validate_batch
from mlops.dev.simulator import BAD_BATCH_KINDS, batch_bytes, make_batch_bytes, simulate_batch
from tests.unit.data import delivery
from tests.unit.data.delivery import CONFIG, churn, suites

# Whole days cut, checked in partitions and combined, seconds each: `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow

DAY = dt.date(2026, 3, 2)
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
ROWS = 2000
PART_MB = 0.03  # about 31 KB: a 2000-row churn batch (~140 KB) in 4-5 partitions


def deliver(tmp_path: Path, name: str, data: bytes) -> Lake:
    return delivery.deliver(tmp_path / name, DAY, data)


def verdict(use_case: UseCase, lake: Lake, config_dir: Path = CONFIG) -> dict[str, Any]:
    return delivery.verdict(use_case, DAY, lake, config_dir, as_of=NOW)


def errors(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each failed expectation with its column and count. A column's type is decided per partition
    (a text value makes its partition's column text), so a type failure counts the rows of the
    partitions whose column has the wrong type, not of the whole day: its count is left out."""
    return sorted(
        (
            e["expectation"],
            e["column"],
            None if e["expectation"] == "expect_column_values_to_be_in_type_list" else e["unexpected_count"],
        )
        for e in summary["errors"]
    )


def test_a_day_is_cut_at_line_ends_and_every_part_reads_as_a_file(tmp_path: Path) -> None:
    data = make_batch_bytes("churn", DAY, "csv", rows=ROWS)
    lake = deliver(tmp_path, "lake", data)
    manifest = read_manifest(lake, "churn", DAY)
    parts = partitions.split(lake, "churn", manifest, int(PART_MB * 2**20))
    assert len(parts) >= 4
    assert [p["start"] for p in parts[1:]] == [p["end"] for p in parts[:-1]] and parts[-1]["end"] == len(data)
    assert all(data[p["start"] - 1 : p["start"]] == b"\n" for p in parts[1:])
    whole = read_batch(data, churn(), "csv")
    pieces = [read_batch(partitions.read_part(lake, "churn", manifest, p), churn(), "csv") for p in parts]
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), whole)
    assert partitions.split(lake, "churn", manifest, 0) == [{"index": 0, "start": 0, "end": len(data)}]


@pytest.mark.parametrize(
    "kind", [None, *(k for k in BAD_BATCH_KINDS if k not in {"empty_file", "unreadable_file"})]
)
def test_partitions_give_the_verdict_of_the_whole_day(tmp_path: Path, kind: str | None) -> None:
    data = make_batch_bytes("churn", DAY, "csv", rows=ROWS, bad=kind)
    whole = verdict(churn(), deliver(tmp_path, "whole", data))
    lake = deliver(tmp_path, "parts", data)
    parted = verdict(churn(PART_MB), lake)
    assert len(parted["parts"]) >= 4 and len(whole["parts"]) == 1
    assert parted["passed"] == whole["passed"] == (kind is None)
    assert errors(parted) == errors(whole), kind
    assert parted["rows"] == whole["rows"]
    if kind is not None:  # one report for the day, naming the failure
        docs = lake.read_bytes(layout.quarantine_docs("churn", DAY)).decode()
        assert "<html" in docs.lower()
        assert all(e["column"] in docs for e in parted["errors"] if e["column"] and "," not in e["column"])


def test_a_key_repeated_in_another_partition_quarantines_the_day(tmp_path: Path) -> None:
    frame = simulate_batch("churn", DAY, rows=ROWS)
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)  # the first rows again, at the end
    data = batch_bytes(frame, "csv")
    summary = verdict(churn(PART_MB), deliver(tmp_path, "lake", data))
    assert len(summary["parts"]) >= 4
    assert errors(summary) == [("expect_compound_columns_to_be_unique", "customer_id,event_time", 6)]


def test_the_row_count_is_the_days_not_a_partitions(tmp_path: Path) -> None:
    data = make_batch_bytes("churn", DAY, "csv", rows=ROWS)
    enough = churn(PART_MB, min_rows=ROWS)
    assert verdict(enough, deliver(tmp_path, "enough", data), suites(tmp_path / "a", enough))[
        "passed"
    ]  # every partition has fewer
    capped = churn(PART_MB, max_rows=ROWS - 1)
    too_many = verdict(capped, deliver(tmp_path, "too-many", data), suites(tmp_path / "b", capped))
    assert [(e["expectation"], e["observed"]) for e in too_many["errors"]] == [
        ("expect_table_row_count_to_be_between", ROWS)
    ]


def test_an_unreadable_partition_quarantines_the_day_naming_it(tmp_path: Path) -> None:
    data = make_batch_bytes("churn", DAY, "csv", rows=ROWS)
    middle = data.index(b"\n", len(data) // 2) + 1
    broken = data[:middle] + b"\xff\xfe,\x00\x00\n" + data[middle:]  # bytes that are no text at all
    summary = verdict(churn(PART_MB), deliver(tmp_path, "lake", broken))
    assert not summary["passed"]
    [error] = summary["errors"]
    assert error["expectation"] == "batch_is_readable"
    assert f"of {len(summary['parts'])} (bytes " in error["text"] and "partition " in error["text"]


def test_features_of_a_partitioned_day_are_those_of_the_whole_day(tmp_path: Path) -> None:
    data = make_batch_bytes("churn", DAY, "csv", rows=ROWS)
    results = {}
    for name, use_case in (("whole", churn()), ("parts", churn(PART_MB))):
        lake = deliver(tmp_path, name, data)
        validate_batch(use_case, DAY, lake, CONFIG, as_of=NOW)
        assert lake.list(layout.parsed_parts_dir("churn", DAY))  # parsed once, by the checks
        store = ParquetFeatureStore(lake)
        results[name] = materialize_features(use_case, DAY, lake, store)
        assert not lake.exists(layout.parsed_parts_dir("churn", DAY))  # staging is gone once committed
        # A retry after the commit parses the archive again: the same rows, the same hash.
        assert materialize_features(use_case, DAY, lake, store) == results[name]
        results[name + "-frame"] = store.read_features("churn", DAY, DAY)
    assert results["parts"] == results["whole"]
    pd.testing.assert_frame_equal(results["parts-frame"], results["whole-frame"])
    assert len(split_batch(churn(PART_MB), DAY, Lake(f"file://{tmp_path / 'parts'}"))) >= 4


def test_features_staged_by_other_feature_code_are_built_again(tmp_path: Path) -> None:
    """The checks build the features; if the feature code changes before the commit (a deploy
    between the tasks), the commit builds them again with the code it runs, from the archive."""
    data = make_batch_bytes("churn", DAY, "csv", rows=ROWS)
    raw = yaml.safe_load((CONFIG / "use_cases" / "churn.yaml").read_text())
    raw["source"]["partition_mb"] = PART_MB
    next(f for f in raw["features"] if f["name"] == "support_contacts_30d")["upper"] = 3
    changed = parse_use_case(raw, "churn.yaml")
    assert changed.feature_version != churn(PART_MB).feature_version

    checked_by_old = deliver(tmp_path, "deploy", data)
    validate_batch(churn(PART_MB), DAY, checked_by_old, CONFIG, as_of=NOW)
    checked_by_new = deliver(tmp_path, "fresh", data)
    validate_batch(changed, DAY, checked_by_new, CONFIG, as_of=NOW)

    committed = materialize_features(changed, DAY, checked_by_old, ParquetFeatureStore(checked_by_old))
    expected = materialize_features(changed, DAY, checked_by_new, ParquetFeatureStore(checked_by_new))
    assert committed == expected and committed["feature_version"] == changed.feature_version
    features = ParquetFeatureStore(checked_by_old).read_features("churn", DAY, DAY)
    assert features["support_contacts_30d"].max() <= 3


def test_extract_cuts_the_day_and_verifies_bytes_it_did_not_archive_now(fresh_home: Path) -> None:
    """extract_batch archives and splits in one task. Bytes archived now were hashed as they were
    copied; a re-delivery of the same bytes finds them archived and checks their hash first."""
    from mlops.core.lake import get_lake
    from mlops.core.settings import load_settings
    from mlops.data.tasks import extract_and_split
    from tests.e2e.helpers import land

    settings, lake, use_case = load_settings(), get_lake(), churn(PART_MB)
    land("churn", DAY, rows=ROWS)
    parts = extract_and_split(use_case, DAY, lake, settings.landing_uri)
    manifest = read_manifest(lake, "churn", DAY)
    assert len(parts) >= 4 and parts[0]["start"] == 0 and parts[-1]["end"] == manifest["bytes"]
    assert (
        extract_and_split(use_case, DAY, lake, settings.landing_uri) == parts
    )  # the same bytes again: a no-op

    archived = lake.path(layout.raw_object("churn", DAY, manifest["sha256"], "csv"))
    archived.write_bytes(archived.read_bytes().replace(b"basic", b"BASIC", 1))  # tampered in the lake
    with pytest.raises(ValueError, match="does not match its manifest hash"):
        extract_and_split(use_case, DAY, lake, settings.landing_uri)


def test_day_key_check_counts_keys_not_hashes() -> None:
    """The day's keys are found by their hashes, then counted by value: a repeated key in
    another partition counts both rows; two keys that share a hash are no duplicate."""
    import pyarrow as pa

    def part(entities: list[int], hashes: list[int] | None = None) -> pa.Table:
        frame = pd.DataFrame({"id": entities, "at": pd.to_datetime(["2026-03-02 01:00"] * len(entities))})
        table = partitions.key_table(frame, ["id", "at"])
        if hashes is not None:  # forced, as if the hash function collided
            table = table.set_column(2, partitions.KEY_HASH, pa.array(hashes, pa.uint64()))
        return table

    def count(tables: list[pa.Table]) -> int:
        return partitions.duplicate_keys(lambda cols: (t.select(cols) for t in tables), ["id", "at"])

    assert count([part([1, 2, 3]), part([4, 5])]) == 0
    assert count([part([1, 2, 3]), part([4, 2]), part([2])]) == 3  # key 2 in three partitions
    assert count([part([1, 2], hashes=[7, 7]), part([3], hashes=[7])]) == 0  # one hash, three keys
    assert count([part([1, 2], hashes=[7, 8]), part([1], hashes=[7])]) == 2
