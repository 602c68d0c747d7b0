"""Every malformed file a real upstream produces is parsed correctly or quarantined with a reason
a person understands; never turned into garbage feature values."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mlops.core.config import get_use_case
from mlops.data.parsing import BatchUnreadable, read_batch
from mlops.dev.simulator import batch_bytes, simulate_batch
from tests.unit.data.delivery import deliver, verdict

# Every malformed batch through the real gate, seconds each: `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow

DAY = dt.date(2026, 1, 5)
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def _clean() -> pd.DataFrame:
    return simulate_batch("churn", DAY, 120)


def _csv(frame: pd.DataFrame, **kwargs) -> bytes:
    return (
        batch_bytes(frame, "csv")
        if not kwargs
        else frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S", **kwargs).encode()
    )


def bom() -> bytes:
    return b"\xef\xbb\xbf" + _csv(_clean())


def semicolons() -> bytes:
    return _csv(_clean(), sep=";")


def thousands() -> bytes:
    frame = _clean()
    frame["total_charges"] = [f"{v:,.2f}" for v in frame["total_charges"]]
    return _csv(frame)


def nan_strings() -> bytes:
    text = _csv(_clean()).decode().splitlines()
    for i, token in zip((1, 2, 3), ("NaN", "null", "None"), strict=True):
        cells = text[i].split(",")
        cells[4] = token  # tenure_months
        text[i] = ",".join(cells)
    return ("\n".join(text) + "\n").encode()


def header_only() -> bytes:
    return _csv(_clean().iloc[:0])


def truncated() -> bytes:
    data = _csv(_clean())
    return data[: len(data) - 25]


def gzip_named_csv() -> bytes:
    return gzip.compress(_csv(_clean()))


def parquet_named_csv() -> bytes:
    return batch_bytes(_clean(), "parquet")


def duplicate_columns() -> bytes:
    text = _csv(_clean()).decode().splitlines()
    text[0] = text[0].replace("region", "plan")
    return ("\n".join(text) + "\n").encode()


def huge_values() -> bytes:
    frame = _clean()
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[frame.index[:2], "monthly_charges"] = "1e308"
    return _csv(frame)


def mixed_types() -> bytes:
    frame = _clean()
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[frame.index[:3], "tenure_months"] = "12 months"
    return _csv(frame)


def tz_aware() -> bytes:
    frame = _clean()
    local = frame["event_time"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    frame["event_time"] = local.map(lambda t: t.isoformat())
    return _csv(frame)


def sql_decimals() -> bytes:
    frame = _clean()
    frame["monthly_charges"] = [decimal.Decimal(f"{v:.2f}") for v in frame["monthly_charges"]]
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


UNREADABLE = [
    pytest.param(
        semicolons,
        "csv",
        "1 column where 12 are expected (it contains ';': wrong delimiter?)",
        id="other-delimiter",
    ),
    pytest.param(gzip_named_csv, "csv", "is gzip-compressed", id="gzip-named-csv"),
    pytest.param(parquet_named_csv, "csv", "is Parquet", id="parquet-named-csv"),
    pytest.param(duplicate_columns, "csv", "repeats column name(s) ['plan']", id="duplicate-columns"),
    pytest.param(lambda: b"", "csv", "empty (0 bytes)", id="empty"),
    pytest.param(lambda: b"PAR1\x00\x00", "parquet", "cannot be parsed as parquet", id="truncated-parquet"),
]


@pytest.mark.parametrize("make, fmt, words", UNREADABLE)
def test_files_that_are_not_what_they_claim_are_refused_with_the_reason(
    tmp_path: Path, make: Callable[[], bytes], fmt: str, words: str
) -> None:
    with pytest.raises(BatchUnreadable) as raised:
        read_batch(make(), get_use_case("churn"), fmt)
    assert words in str(raised.value)
    summary = verdict(get_use_case("churn"), DAY, deliver(tmp_path, DAY, make(), fmt), as_of=NOW)
    assert not summary["passed"]  # the gate quarantines the day, with the reason
    [error] = summary["errors"]
    assert error["expectation"] == "batch_is_readable" and words in error["text"]


QUARANTINED = [
    pytest.param(
        thousands, "expect_column_values_to_be_in_type_list", "total_charges", id="thousands-separators"
    ),
    pytest.param(
        nan_strings, "expect_column_values_to_not_be_null", "tenure_months", id="nan-null-none-strings"
    ),
    pytest.param(header_only, "expect_table_row_count_to_be_between", None, id="header-only"),
    pytest.param(truncated, "expect_column_values_to_not_be_null", None, id="truncated"),
    pytest.param(huge_values, "expect_column_values_to_be_between", "monthly_charges", id="1e308"),
    pytest.param(mixed_types, "expect_column_values_to_be_in_type_list", "tenure_months", id="mixed-types"),
]


@pytest.mark.parametrize("make, expectation, column", QUARANTINED)
def test_malformed_values_are_quarantined_with_a_named_expectation(
    tmp_path: Path, make: Callable[[], bytes], expectation: str, column: str | None
) -> None:
    summary = verdict(get_use_case("churn"), DAY, deliver(tmp_path, DAY, make()), as_of=NOW)
    assert not summary["passed"]
    named = [(e["expectation"], e["column"]) for e in summary["errors"]]
    assert any(e == expectation and (column is None or c == column) for e, c in named), named


@pytest.mark.parametrize(
    "make, fmt",
    [
        pytest.param(bom, "csv", id="byte-order-mark"),
        pytest.param(tz_aware, "csv", id="timezone-aware"),
        pytest.param(sql_decimals, "parquet", id="sql-decimals"),
    ],
)
def test_encodings_of_good_data_are_parsed_correctly(
    tmp_path: Path, make: Callable[[], bytes], fmt: str
) -> None:
    use_case = get_use_case("churn")
    frame = read_batch(make(), use_case, fmt)
    clean = _clean()
    assert list(frame.columns) == list(clean.columns)
    assert (pd.to_datetime(frame["event_time"]) == clean["event_time"]).all()  # UTC, naive
    assert frame["monthly_charges"].dtype == "float64"
    assert frame["monthly_charges"].round(2).tolist() == clean["monthly_charges"].round(2).tolist()
    summary = verdict(use_case, DAY, deliver(tmp_path, DAY, make(), fmt), as_of=NOW)
    assert summary["passed"], summary["reason"]
