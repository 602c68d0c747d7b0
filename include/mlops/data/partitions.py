"""A day's delivery in partitions: cut at line ends, checked one mapped task each, one verdict.

A large CSV delivery is validated in byte ranges of about ``source.partition_mb`` (the header line
is read with each), so a task holds one partition in memory whatever the size of the day, and
the Celery workers share a day. Each partition is checked against the suite on its own; the
day's verdict combines them, so a day is accepted or quarantined whole, with one report:

* a column expectation fails if it fails in any partition; its unexpected counts add up;
* the row-count expectation is decided on the day's total, not per partition;
* the compound key must be unique across the day: with more than one partition, the keys of all
  partitions are counted together (staged by each check with a hash of each key: the hashes
  find the candidates, the keys decide).

The raw object stays as archived; partitions are only ranges of it.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mlops.core import layout
from mlops.core.results import BatchPart, RawManifest

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops.core.lake import Lake

ROW_COUNT = "expect_table_row_count_to_be_between"
KEY_UNIQUE = "expect_compound_columns_to_be_unique"
KEY_HASH = "__key_hash"
_SCAN = 1 << 16


def split(lake: Lake, stream: str, manifest: RawManifest, part_bytes: int) -> list[BatchPart]:
    """The partitions of an archived delivery: equal byte ranges of at most about ``part_bytes``, each cut after a newline.

    Parquet, small files and ``part_bytes`` 0 give one partition: the whole object.
    """
    size = manifest["bytes"]
    if manifest["format"] != "csv" or part_bytes <= 0 or size <= part_bytes:
        return [BatchPart(index=0, start=0, end=size)]
    step = size / -(-size // part_bytes)  # as many partitions as needed, of equal size
    cuts = [0]
    with lake.open_read(layout.raw_object(stream, manifest["interval"], manifest["sha256"], "csv")) as fh:
        first_row = _line_end(fh, 0, size)  # the first partition holds the header and a row at least
        for k in range(1, -(-size // part_bytes)):
            cut = _line_end(fh, max(int(k * step), first_row, cuts[-1]), size)
            if cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
    cuts.append(size)
    return [BatchPart(index=i, start=a, end=b) for i, (a, b) in enumerate(itertools.pairwise(cuts))]


def _line_end(fh: Any, offset: int, size: int) -> int:
    """The offset just past the first newline at or after ``offset`` (``size`` if there is none)."""
    fh.seek(offset)
    while offset < size:
        chunk = fh.read(_SCAN)
        if not chunk:
            break
        found = chunk.find(b"\n")
        if found >= 0:
            return offset + found + 1
        offset += len(chunk)
    return size


def read_part(lake: Lake, stream: str, manifest: RawManifest, part: BatchPart) -> bytes:
    """The bytes of one partition as a file of its own: the header line, then its range."""
    rel = layout.raw_object(stream, manifest["interval"], manifest["sha256"], manifest["format"])
    with lake.open_read(rel) as fh:
        header = b""
        if part["start"] > 0:
            header = fh.read(min(_SCAN, part["start"]))
            while b"\n" not in header and len(header) < part["start"]:
                more = fh.read(_SCAN)
                if not more:
                    break
                header += more
            header = header[: header.find(b"\n") + 1]
        fh.seek(part["start"])
        return header + bytes(fh.read(part["end"] - part["start"]))


def part_suite(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite a partition is checked with: the row count is the day's, so no bounds per partition."""
    out = copy.deepcopy(suite)
    for expectation in out["expectations"]:
        if expectation["type"] == ROW_COUNT:
            expectation["kwargs"] = {**expectation["kwargs"], "min_value": 0, "max_value": None}
    return out


def key_table(frame: pd.DataFrame, columns: list[str]) -> pa.Table:
    """A partition's compound keys, each with a 64-bit hash of the key (pandas' row hash)."""
    import pyarrow as pa

    from mlops.data.feature_store.hashing import row_hashes

    keys = frame[columns]
    return pa.Table.from_pandas(keys, preserve_index=False).append_column(
        KEY_HASH, pa.array(row_hashes(keys), pa.uint64())
    )


def duplicate_keys(read: Callable[[list[str]], Iterable[pa.Table]], columns: list[str]) -> int:
    """How many rows of the day share their compound key with another row (GX's count of the expectation).

    ``read(columns)`` gives the partitions' key tables (``key_table``) with those columns. Memory
    stays at about 16 bytes a row: the day's key hashes are sorted to find the hashes seen more
    than once; only the rows with those hashes are read again with their keys and counted
    exactly (two keys that share a hash are not a duplicate).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    hashes = np.concatenate(
        [np.empty(0, np.uint64), *(t.column(KEY_HASH).to_numpy() for t in read([KEY_HASH]))]
    )
    hashes.sort()
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    del hashes
    if not len(repeated):
        return 0
    wanted = pa.array(repeated, pa.uint64())
    candidates = [
        t.filter(pc.is_in(t[KEY_HASH], value_set=wanted)).select(columns) for t in read([*columns, KEY_HASH])
    ]
    counts = (
        pa.concat_tables(candidates, promote_options="permissive")
        .group_by(columns)
        .aggregate([([], "count_all")])
    )
    shared = counts.filter(pc.greater(counts["count_all"], 1))
    return int(pc.sum(shared["count_all"]).as_py() or 0)


def combine_results(
    suite: dict[str, Any], results: list[dict[str, Any]], part_rows: list[int], duplicates: int | None
) -> dict[str, Any]:
    """One validation result for the day from its partitions' results (all checked with the same suite).

    With one partition it is that partition's result, its row count decided against the suite's
    bounds. ``duplicates`` is the day's count of rows with a repeated key (None: one partition,
    whose own check already saw every row).
    """
    rows = sum(part_rows)
    day = copy.deepcopy(results[0])
    by_key = [{_key(x): x for x in r["results"]} for r in results]  # GX orders results its own way
    for item in day["results"]:
        kind = item["expectation_config"]["type"]
        items = [found[_key(item)] for found in by_key]
        if kind == ROW_COUNT:
            expected = next(e for e in suite["expectations"] if e["type"] == ROW_COUNT)
            item["expectation_config"]["kwargs"] = {
                **item["expectation_config"]["kwargs"],
                **expected["kwargs"],
            }
            low, high = expected["kwargs"].get("min_value"), expected["kwargs"].get("max_value")
            item["success"] = (low is None or rows >= low) and (high is None or rows <= high)
            item["result"] = {"observed_value": rows}
            continue
        if len(results) == 1:
            continue
        failed = [x for x in items if not x["success"]]
        item["success"] = not failed
        if failed:
            item["result"] = _merged(failed, rows)
            item["exception_info"] = next(
                (x["exception_info"] for x in failed if _raised(x)), failed[0].get("exception_info")
            )
        if kind == KEY_UNIQUE and duplicates is not None:
            item["success"] = duplicates == 0 and not any(_raised(x) for x in items)
            if duplicates:
                item["result"] = {**item.get("result", {}), "element_count": rows, "unexpected_count": duplicates,
                                  "unexpected_percent": 100 * duplicates / rows if rows else 0.0}  # fmt: skip
    done = [item["success"] for item in day["results"]]
    day["success"] = all(done)
    day["statistics"] = {
        "evaluated_expectations": len(done),
        "successful_expectations": sum(done),
        "unsuccessful_expectations": len(done) - sum(done),
        "success_percent": 100 * sum(done) / len(done) if done else None,
    }
    return day


def _key(item: dict[str, Any]) -> str:
    config = item["expectation_config"]
    return json.dumps([config["type"], config["kwargs"], config.get("meta")], sort_keys=True, default=str)


def _raised(item: dict[str, Any]) -> bool:
    info = item.get("exception_info") or {}
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _merged(failed: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """The result of an expectation that failed in some partitions, counted over the day's rows."""
    first = dict(failed[0].get("result") or {})
    counts = [(x.get("result") or {}).get("unexpected_count") for x in failed]
    if all(c is not None for c in counts):
        unexpected = sum(c for c in counts if c is not None)
        first["unexpected_count"] = unexpected
        first["element_count"] = rows
        first["unexpected_percent"] = 100 * unexpected / rows if rows else 0.0
        first["unexpected_percent_total"] = first["unexpected_percent"]
        first.pop("unexpected_percent_nonmissing", None)
        first.pop("missing_count", None)
        first.pop("missing_percent", None)
        samples = [v for x in failed for v in (x.get("result") or {}).get("partial_unexpected_list", [])]
        if samples:
            first["partial_unexpected_list"] = samples[:20]
        first.pop("partial_unexpected_counts", None)
        first.pop("partial_unexpected_index_list", None)
    return first


def seen_range(ranges: list[tuple[str, str] | list[str] | None]) -> tuple[str, str] | None:
    """The event-time range of the day from its partitions' ranges (ISO strings compare in order)."""
    present = [r for r in ranges if r]
    if not present:
        return None
    return min(r[0] for r in present), max(r[1] for r in present)
