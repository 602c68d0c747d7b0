from __future__ import annotations

import datetime as dt

import pandas as pd

from mlops.dev.simulator import LabelDelays, label_delays, simulate_batch, simulate_labels

START = dt.date(2026, 3, 1)


def test_each_label_arrives_once_after_its_delay_or_never() -> None:
    delays = LabelDelays(min_days=1, max_days=3, late_share=0.1, late_days=5, missing_share=0.1)
    event_days = [START + dt.timedelta(days=i) for i in range(3)]
    deliveries = pd.concat(
        [
            simulate_labels(
                "churn", START + dt.timedelta(days=i), rows=300, delays=delays, first_event_day=START
            ).assign(delivered=START + dt.timedelta(days=i))
            for i in range(1, 3 + delays.horizon + 1)
        ],
        ignore_index=True,
    )
    assert not deliveries.duplicated(["customer_id", "event_time"]).any()
    for day in event_days:
        batch = simulate_batch("churn", day, 300)
        fates = label_delays("churn", day, 300, delays)
        got = deliveries[deliveries["event_time"].dt.date == day]
        assert len(got) == sum(f is not None for f in fates)  # missing labels never arrive
        lag = (pd.to_datetime(got["delivered"]) - pd.Timestamp(day)).dt.days
        assert lag.min() >= 1 and lag.max() <= delays.max_days + delays.late_days
        assert (lag > delays.max_days).any()  # some arrive late
        truth = batch.set_index(["customer_id", "event_time"])["churned"]
        assert (
            got.set_index(["customer_id", "event_time"])["churned"]
            == truth.loc[got.set_index(["customer_id", "event_time"]).index]
        ).all()


def test_concept_drift_changes_the_labels_not_the_inputs() -> None:
    day = START + dt.timedelta(days=10)
    before = simulate_batch("churn", day, 2000)
    after = simulate_batch("churn", day, 2000, concept=START)
    inputs = [c for c in before.columns if c != "churned"]
    pd.testing.assert_frame_equal(before[inputs], after[inputs])
    assert (before["churned"] != after["churned"]).mean() > 0.2
    same_day_before_concept = simulate_batch("churn", day, 2000, concept=day + dt.timedelta(days=1))
    pd.testing.assert_frame_equal(before, same_day_before_concept)
