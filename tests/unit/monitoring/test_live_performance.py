"""Live performance on predictions whose labels have arrived: on time, late, never."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops.data.features import ENTITY, EVENT_TIME, LABEL, LABEL_AVAILABLE_AT
from mlops.monitoring.drift import live_performance

DAY1, DAY2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


def _predictions(day: dt.date, n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(day.toordinal())
    return pd.DataFrame(
        {
            ENTITY: [f"c{i}" for i in range(n)],
            EVENT_TIME: pd.Timestamp(day) + pd.to_timedelta(np.arange(n), unit="min"),
            "score": rng.uniform(size=n),
        }
    )


def _labels(
    preds: pd.DataFrame, arrived: dt.date, *, perfect: bool, rows: slice = slice(None)
) -> pd.DataFrame:
    part = preds.iloc[rows]
    label = (part["score"] > 0.5).astype(float) if perfect else 1.0 - (part["score"] > 0.5).astype(float)
    return pd.DataFrame(
        {
            ENTITY: part[ENTITY],
            EVENT_TIME: part[EVENT_TIME],
            LABEL: label,
            LABEL_AVAILABLE_AT: pd.Timestamp(arrived + dt.timedelta(days=1)),
        }
    )


def _measure(labels: pd.DataFrame, preds: pd.DataFrame, as_of: dt.date) -> tuple:
    return live_performance(
        labels,
        preds,
        as_of=pd.Timestamp(as_of + dt.timedelta(days=1)),
        out_col="score",
        task="classification",
        metric="accuracy",
        min_rows=20,
    )


@pytest.mark.parametrize(
    "arrival, checked_on, counted",
    [
        pytest.param(DAY1 + dt.timedelta(days=1), DAY1 + dt.timedelta(days=2), True, id="on-time"),
        pytest.param(
            DAY1 + dt.timedelta(days=9), DAY1 + dt.timedelta(days=2), False, id="late-not-yet-arrived"
        ),
        pytest.param(DAY1 + dt.timedelta(days=9), DAY1 + dt.timedelta(days=10), True, id="late-arrived"),
    ],
)
def test_only_labels_arrived_by_the_check_count(arrival: dt.date, checked_on: dt.date, counted: bool) -> None:
    preds = _predictions(DAY1)
    overall, by_day = _measure(_labels(preds, arrival, perfect=True), preds, checked_on)
    if counted:
        assert overall == {"metric": "accuracy", "current": 1.0, "rows": 100}
        assert by_day == [{"day": DAY1.isoformat(), "metric": "accuracy", "rows": 100, "value": 1.0}]
    else:
        assert overall is None and by_day == []


def test_never_arriving_labels_leave_a_day_unmeasured_and_others_per_day() -> None:
    p1, p2 = _predictions(DAY1), _predictions(DAY2)
    preds = pd.concat([p1, p2], ignore_index=True)
    labels = pd.concat(
        [_labels(p1, DAY2, perfect=True), _labels(p2, DAY2, perfect=False, rows=slice(0, 10))],
        ignore_index=True,
    )  # day 2: 90 labels never arrive
    overall, by_day = _measure(labels, preds, DAY2 + dt.timedelta(days=1))
    assert by_day == [
        {"day": DAY1.isoformat(), "metric": "accuracy", "rows": 100, "value": 1.0},
        {"day": DAY2.isoformat(), "metric": "accuracy", "rows": 10, "value": None},  # too few to judge
    ]
    assert overall is not None and overall["rows"] == 110 and overall["current"] == pytest.approx(100 / 110)


def test_a_corrected_label_counts_once_with_its_latest_value() -> None:
    preds = _predictions(DAY1)
    first = _labels(preds, DAY1 + dt.timedelta(days=1), perfect=False)
    correction = _labels(preds, DAY1 + dt.timedelta(days=2), perfect=True)
    overall, _ = _measure(
        pd.concat([first, correction], ignore_index=True), preds, DAY1 + dt.timedelta(days=3)
    )
    assert overall == {"metric": "accuracy", "current": 1.0, "rows": 100}
