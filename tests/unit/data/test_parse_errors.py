"""A part whose bytes are not a well-formed file is quarantined with the reason; a part that could
not be read because of the worker or the lake (out of memory, an I/O error, anything unexpected)
fails the check, so Airflow retries it, and quarantines nothing."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import IO, Any

import pytest

from mlops.core import layout
from mlops.core.lake import Lake
from mlops.data.parsing import BatchUnreadable, read_batch
from mlops.data.tasks import BatchRejected, validate_batch
from mlops.dev.simulator import batch_bytes, simulate_batch
from tests.unit.data.delivery import CONFIG, archive, churn

DAY = dt.date(2026, 1, 5)
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def _csv() -> bytes:
    return batch_bytes(simulate_batch("churn", DAY, 120), "csv")


def _invalid_utf8() -> bytes:
    lines = _csv().split(b"\n")
    cells = lines[3].split(b",")
    cells[2] = "été".encode("latin-1")  # the plan, a text column, in another encoding
    lines[3] = b",".join(cells)
    return b"\n".join(lines)


def _open_quote() -> bytes:
    lines = _csv().split(b"\n")
    lines[3] = lines[3].replace(b",", b',"', 1)  # a quote opened and never closed
    return b"\n".join(lines)


class FailingLake(Lake):
    """A lake whose reads of the raw archive fail as a flaky disk or S3 fails them."""

    def open_read(self, rel: str) -> IO[bytes]:
        if rel.startswith(layout.raw_root("churn") + "/"):
            raise OSError(5, "Input/output error", self.uri(rel))
        return super().open_read(rel)


def _judge(lake: Lake) -> dict[str, Any]:
    return dict(validate_batch(churn(), DAY, lake, CONFIG, as_of=NOW))


def _nothing_quarantined(lake: Lake) -> None:
    assert not lake.exists(layout.quarantine_reason("churn", DAY))
    assert not lake.exists(layout.quarantine_dir("churn", DAY))
    assert not lake.exists(layout.validation_summary("churn", DAY))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(_invalid_utf8, "UnicodeDecodeError", id="encoding"),
        pytest.param(_open_quote, "ParserError", id="malformed-csv"),
    ],
)
def test_a_malformed_part_is_quarantined_with_the_reason(tmp_path: Path, data: Any, error: str) -> None:
    lake = Lake(f"file://{tmp_path}")
    archive(lake, DAY, data())
    with pytest.raises(BatchRejected, match="quarantined"):
        _judge(lake)
    reason = lake.read_json(layout.quarantine_reason("churn", DAY))
    assert [e["expectation"] for e in reason["errors"]] == ["batch_is_readable"]
    assert error in reason["reason"] and "cannot be parsed as csv" in reason["reason"]


def test_a_corrupt_parquet_file_is_unreadable_whatever_pyarrow_calls_it() -> None:
    import pyarrow as pa

    good = io.BytesIO()
    simulate_batch("churn", DAY, 200).to_parquet(good, index=False, compression="snappy")
    data = good.getvalue()
    # Bytes of the pages overwritten: pyarrow refuses them with OSError, ArrowInvalid or a bare
    # ArrowException depending on where the damage lands; each means the file is corrupt.
    for start in range(8, len(data) - 64, max(1, len(data) // 12)):
        broken = data[:start] + bytes(48) + data[start + 48 :]
        try:
            read_batch(broken, churn(), "parquet")
        except BatchUnreadable as exc:
            assert "cannot be parsed as parquet" in str(exc)
        except (OSError, ValueError, pa.ArrowException) as exc:
            pytest.fail(f"corrupt Parquet at byte {start} raised {exc!r} instead of BatchUnreadable")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(MemoryError("cannot allocate 2.1 GB"), id="memory"),
        pytest.param(OSError(28, "No space left on device"), id="os-error"),
        pytest.param(RuntimeError("an error nobody expected"), id="unknown"),
    ],
)
def test_an_error_of_the_worker_while_parsing_fails_the_check_and_quarantines_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    import pyarrow.csv

    lake = Lake(f"file://{tmp_path}")
    archive(lake, DAY, _csv())

    def read_csv(*args: Any, **kwargs: Any) -> Any:  # Arrow's CSV reader, which read_batch calls
        raise error

    monkeypatch.setattr(pyarrow.csv, "read_csv", read_csv)
    with pytest.raises(type(error)) as raised:
        _judge(lake)
    assert raised.value is error
    _nothing_quarantined(lake)

    monkeypatch.undo()  # the worker recovered: the retry passes
    assert _judge(lake)["passed"] is True


def test_arrow_running_out_of_memory_on_parquet_is_retried_not_quarantined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet

    good = io.BytesIO()
    simulate_batch("churn", DAY, 50).to_parquet(good, index=False)

    def read_table(*args: Any, **kwargs: Any) -> Any:  # what pandas' read_parquet calls
        raise pa.ArrowMemoryError("malloc of size 2147483648 failed")

    monkeypatch.setattr(pyarrow.parquet, "read_table", read_table)
    with pytest.raises(MemoryError):
        read_batch(good.getvalue(), churn(), "parquet")


def test_a_failed_read_of_the_archive_fails_the_check_and_quarantines_nothing(tmp_path: Path) -> None:
    archive(Lake(f"file://{tmp_path}"), DAY, _csv())
    lake = FailingLake(f"file://{tmp_path}")
    with pytest.raises(OSError, match="Input/output error"):
        _judge(lake)
    _nothing_quarantined(lake)
    assert _judge(Lake(f"file://{tmp_path}"))["passed"] is True
