from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from mlops.core.config import get_use_case, load_use_cases, parse_use_case
from mlops.data.parsing import read_batch
from mlops.data.validation import (
    EVENT_TIME_CHECK,
    EVENT_TIME_MAX,
    EVENT_TIME_MIN,
    derive_suite,
    event_time_window,
    suite_path,
)
from mlops.dev.simulator import batch_bytes, simulate_batch
from tests.unit.data.delivery import churn, deliver, verdict

ROOT = Path(__file__).resolve().parents[3]


def test_stored_suites_match_the_configs() -> None:
    good, _ = load_use_cases(ROOT / "config")
    for use_case in good.values():
        for feed in use_case.feeds:
            stored = json.loads(suite_path(ROOT / "config", feed.stream).read_text())
            assert stored == derive_suite(feed), f"run `python -m mlops suites` for {feed.stream}"


DAY = dt.date(2026, 1, 5)
NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)


def test_event_time_window_allows_the_day_and_the_tolerance_but_not_the_future() -> None:
    window = event_time_window(DAY, 2, NOW)
    assert window[EVENT_TIME_MIN] == pd.Timestamp("2026-01-04 22:00")
    assert window[EVENT_TIME_MAX] == pd.Timestamp("2026-01-06 02:00")
    midday = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
    assert event_time_window(DAY, 2, midday)[EVENT_TIME_MAX] == pd.Timestamp("2026-01-05 12:00")


def _shift(frame: pd.DataFrame, rows: int, to: str) -> pd.DataFrame:
    """Events one second apart from 01:00 of DAY, the first ``rows`` of them moved to ``to``."""
    frame = frame.copy()
    frame["event_time"] = (
        pd.Timestamp(DAY) + pd.Timedelta(hours=1) + pd.to_timedelta(range(len(frame)), unit="s")
    )
    frame.loc[frame.index[:rows], "event_time"] = pd.Timestamp(to)
    return frame


@pytest.mark.parametrize(
    "rows, to, tolerance, as_of, passed",
    [
        pytest.param(3, "2027-01-05 10:00", 0, NOW, False, id="a-year-in-the-future"),
        pytest.param(4, "2026-01-03 23:00", 0, NOW, False, id="two-days-early"),
        pytest.param(5, "2026-01-04 23:00", 2, NOW, True, id="late-within-tolerance"),
        pytest.param(
            2,
            "2026-01-05 18:00",
            0,
            dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC),
            False,
            id="after-the-run-started",
        ),
        pytest.param(0, "2026-01-05 00:00", 0, NOW, True, id="all-inside-the-day"),
    ],
)
def test_event_time_gate(
    tmp_path: Path, rows: int, to: str, tolerance: float, as_of: dt.datetime, passed: bool
) -> None:
    frame = _shift(simulate_batch("churn", DAY, 200), rows, to)
    lake = deliver(tmp_path, DAY, batch_bytes(frame, "csv"))
    summary = verdict(churn(event_time_tolerance_hours=tolerance), DAY, lake, as_of=as_of)
    failures = [f for f in summary["errors"] if f["check"] == EVENT_TIME_CHECK]
    assert summary["passed"] is passed
    if passed:
        assert failures == []
        return
    [failure] = failures
    assert failure["unexpected_count"] == rows
    text = failure["text"]
    assert f"{rows} rows" in text and "outside the batch's day" in text
    assert str(pd.Timestamp(to)) in text  # the range seen names the offending time


def test_string_keys_are_read_as_text() -> None:
    raw = get_use_case("churn").model_dump(by_alias=True)
    raw["schema"]["columns"]["customer_id"] = {"type": "str"}
    use_case = parse_use_case(raw, "churn.yaml")
    frame = simulate_batch("churn", DAY, 20)
    frame["customer_id"] = [f"{i:05d}" for i in range(20)]
    parsed = read_batch(batch_bytes(frame, "csv"), use_case, "csv")
    assert list(parsed["customer_id"])[:3] == ["00000", "00001", "00002"]
