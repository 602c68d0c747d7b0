"""Reading a delivery's bytes into a frame: what the validation gate checks and features are built from.

The bytes are parsed as the feed's declared format; a file that is not what it claims (gzip or
Parquet named .csv, another delimiter, a repeated column name, no bytes at all) is refused with
``BatchUnreadable`` and the reason in words a person acts on. What is parsed is normalized the
way the suite expects it: upstream headers renamed to column names (a column's ``source``),
event times as naive UTC, SQL decimals as floats, text keys as text.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from mlops.data.ingest import as_feed

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import ColumnSpec, Feed, UseCase


class BatchUnreadable(ValueError):
    """The batch bytes cannot be parsed at all (empty, corrupt, wrong format)."""


MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"PAR1": "Parquet",
    b"PK\x03\x04": "a zip archive",
    b"\x00": "binary",
}
"""What a file starting with these bytes is (a declared CSV that starts so is not one)."""


def _sniff(data: bytes, fmt: str) -> None:
    """Refuse a file whose bytes say it is something else than its declared format."""
    if fmt == "parquet":
        if not data.startswith(b"PAR1"):
            raise BatchUnreadable(
                "the file is declared Parquet but does not start with Parquet's magic bytes "
                "(truncated, or another format?)"
            )
        return
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            raise BatchUnreadable(
                f"the file is declared {fmt} but is {what}: the upstream sent the wrong file or format"
            )


def _header(data: bytes) -> list[str]:
    import csv

    end = data.find(b"\n")
    first = data[: end if end >= 0 else len(data)].decode("utf-8-sig", errors="replace").rstrip("\r")
    return next(csv.reader([first]), [])


def data_errors(fmt: str) -> tuple[type[Exception], ...]:
    """What the readers raise when the bytes of a ``fmt`` file are not a well-formed file: the
    file is unreadable (quarantined), and parsing it again would fail the same way.

    pandas' ``ParserError`` and ``EmptyDataError``, ``UnicodeDecodeError`` and pyarrow's
    ``ArrowInvalid`` are all ``ValueError``; the rest of Arrow's family (``ArrowTypeError``, the
    bare ``ArrowException`` of a corrupt dictionary page) is caught by its base, all but
    ``ArrowMemoryError`` and ``ArrowCancelled``, which the caller lets through. A Parquet file is
    decoded from bytes already in memory, so the ``OSError`` pyarrow raises there ("Corrupt snappy
    compressed data", "Couldn't deserialize thrift") is its word for a corrupt file, not a failed
    read. Anything else (``MemoryError``, an ``OSError`` of the lake, an error nobody expected)
    propagates: the task fails this try and Airflow retries it, nothing is quarantined.
    """
    import pyarrow as pa

    if fmt == "parquet":
        return ValueError, pa.ArrowException, OSError
    return ValueError, pa.ArrowException


def read_batch(data: bytes, use_case: UseCase | Feed, fmt: str) -> pd.DataFrame:
    """Parse raw batch bytes into a frame; raise BatchUnreadable naming why, in words a person acts on.

    A column delivered under its ``source`` header is renamed to the column's name (a delivery may
    also carry the name itself; both at once is refused). A byte-order mark is read as such;
    timezone-aware event times become UTC; SQL decimals in numeric columns become floats. A file
    that is not what it claims (gzip or Parquet named .csv), uses another delimiter, or repeats a
    column name is refused with the reason.
    """
    import pandas as pd
    import pyarrow as pa

    columns = as_feed(use_case).columns
    if not data:
        raise BatchUnreadable("the batch file is empty (0 bytes)")
    _sniff(data, fmt)
    delivered: dict[str, str] = {}  # the CSV header's renames, to type its text columns as read
    if fmt != "parquet":
        header = _header(data)
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            raise BatchUnreadable(
                f"the header repeats column name(s) {repeated}: each column must appear once"
            )
        if len(header) == 1 and len(columns) > 1:
            guess = next((d for d in (";", "\t", "|") if d in header[0]), None)
            hint = f" (it contains {guess!r}: wrong delimiter?)" if guess else " (wrong delimiter?)"
            raise BatchUnreadable(
                f"the file has 1 column where {len(columns)} are expected{hint}; "
                "the platform reads comma-separated files"
            )
        delivered = column_renames(header, columns)
    try:
        frame = pd.read_parquet(io.BytesIO(data)) if fmt == "parquet" else _read_csv(data, columns, delivered)
    except (MemoryError, pa.ArrowCancelled):  # the worker's trouble, not the file's: retried
        raise
    except data_errors(fmt) as exc:
        raise BatchUnreadable(f"the batch cannot be parsed as {fmt}: {type(exc).__name__}: {exc}") from None
    if frame.columns.empty:
        raise BatchUnreadable("the batch has no columns")
    renames = column_renames([str(c) for c in frame.columns], columns)
    if renames:  # in place: the data is not copied
        frame.columns = [renames.get(c, c) for c in frame.columns]
    for name, col in columns.items():
        if name not in frame:
            continue
        if col.type == "datetime":
            frame[name] = _as_utc_naive(frame[name])
        elif col.type in ("float", "int") and frame[name].dtype == object:
            frame[name] = _decimals_as_float(frame[name])
    return frame


def column_renames(header: list[str], columns: dict[str, ColumnSpec]) -> dict[str, str]:
    """The delivery's headers to rename, each to its column's name: the ``source`` of each column
    whose delivery carries it. A delivery that carries both a column's source and its name is refused:
    either could be the column. A column under neither is left for the suite to report missing."""
    renames = {}
    for name, col in columns.items():
        if col.source is None or col.source == name or col.source not in header:
            continue
        if name in header:
            raise BatchUnreadable(
                f"the header has both {col.source!r} (the source of column {name!r}) and {name!r}: "
                "either could be the column; the delivery must carry one of them"
            )
        renames[col.source] = name
    return renames


def _read_csv(data: bytes, columns: dict[str, ColumnSpec], renames: dict[str, str]) -> pd.DataFrame:
    """Arrow's multi-threaded reader, which also parses ISO 8601 event times (offsets to UTC) that
    pandas would leave as text for a second, slower pass. A file Arrow refuses (a short or long
    row, say) is read again by pandas' tolerant reader, so that the suite names what is wrong
    (the nulls of a truncated last row) as it always has; if that fails too, the file is unreadable.

    Text columns stay text ("00123" is a key, not the number 123); a byte-order mark is not data.
    Columns are found by their header in the file (``renames``: header to name), not yet renamed.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header_of = {name: header for header, name in renames.items()}
    text = [header_of.get(name, name) for name, col in columns.items() if col.type in ("str", "category")]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in text}, strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):  # refused: the tolerant reader decides
        return pd.read_csv(
            io.BytesIO(data), low_memory=False, dtype=dict.fromkeys(text, "string"), encoding="utf-8-sig"
        )
    frame = table.to_pandas()
    for name in text:
        if name in frame:
            frame[name] = frame[name].astype("string")
    return frame


def _as_utc_naive(values: pd.Series) -> pd.Series:
    """Event times as naive UTC nanoseconds; text that does not parse is left for the type check to report.

    Nanoseconds whatever the reader produced (Arrow gives seconds): Great Expectations' pandas
    checks take twice as long on other units.
    """
    import pandas as pd

    if values.dtype == object:
        try:
            aware = values.astype(str).str.contains(r"(?:Z|[+-]\d\d:?\d\d)$").any()
            values = pd.to_datetime(values, format="ISO8601", utc=aware)
        except (ValueError, TypeError):
            return values
    tz = getattr(values.dtype, "tz", None)
    if tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype) and values.dtype != "datetime64[ns]":
        try:
            values = values.astype("datetime64[ns]")
        except (ValueError, OverflowError):  # beyond 2262: kept as read, for the range check to report
            return values
    return values


def _decimals_as_float(values: pd.Series) -> pd.Series:
    """SQL NUMERIC arrives as decimal.Decimal objects: numbers, not text."""
    import decimal

    import pandas as pd

    present = values.dropna()
    if len(present) and all(isinstance(v, decimal.Decimal) for v in present):
        present_or_none = values.astype(object).where(values.notna(), None)
        return pd.to_numeric(present_or_none, errors="raise").astype("float64")
    return values
