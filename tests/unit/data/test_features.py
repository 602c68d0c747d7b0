from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops.core.config import get_use_case
from mlops.data.features import (
    ENTITY,
    EVENT_TIME,
    LABEL,
    LABEL_AVAILABLE_AT,
    build_features,
    extract_labels,
    point_in_time_join,
)
from mlops.dev.simulator import simulate_batch


def test_build_features_is_deterministic_and_typed() -> None:
    uc = get_use_case("churn")
    batch = simulate_batch("churn", dt.date(2026, 1, 5), 300)
    a, b = build_features(batch, uc), build_features(batch, uc)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == [ENTITY, EVENT_TIME, *uc.feature_names]
    ratio = batch["total_charges"] / batch["tenure_months"].where(batch["tenure_months"] != 0)
    np.testing.assert_allclose(a["charges_per_month_of_tenure"], ratio)
    assert a["support_contacts_30d"].max() <= 30
    np.testing.assert_allclose(a["log_logins_30d"], np.log1p(batch["logins_30d"]))


def test_regression_time_features() -> None:
    uc = get_use_case("delivery_time")
    batch = simulate_batch("delivery_time", dt.date(2026, 1, 5), 100)
    feats = build_features(batch, uc)
    assert (feats["hour_of_day"] == pd.to_datetime(batch["ordered_at"]).dt.hour).all()
    assert set(feats["day_of_week"]) == {float(dt.date(2026, 1, 5).weekday())}


def test_labels_become_known_after_the_delay() -> None:
    uc = get_use_case("churn")
    batch = simulate_batch("churn", dt.date(2026, 1, 5), 50)
    labels = extract_labels(batch, uc)
    delay = (labels[LABEL_AVAILABLE_AT] - labels[EVENT_TIME]).unique()
    assert list(delay) == [pd.Timedelta(days=uc.schema_.label_delay_days)]


def test_point_in_time_join_never_uses_future_features() -> None:
    t = pd.Timestamp("2026-01-10 12:00")
    features = pd.DataFrame(
        {
            ENTITY: [1, 1, 1, 2],
            EVENT_TIME: [t - pd.Timedelta(days=2), t, t + pd.Timedelta(days=1), t - pd.Timedelta(days=1)],
            "x": [1.0, 2.0, 99.0, 5.0],
        }
    )
    labels = pd.DataFrame(
        {
            ENTITY: [1, 2, 1],
            EVENT_TIME: [t + pd.Timedelta(hours=6), t, t + pd.Timedelta(days=3)],
            LABEL: [1.0, 0.0, 1.0],
            LABEL_AVAILABLE_AT: [
                t + pd.Timedelta(days=1),
                t + pd.Timedelta(days=1),
                t + pd.Timedelta(days=6),
            ],
        }
    )
    joined = point_in_time_join(labels, features, as_of=(t + pd.Timedelta(days=2)).to_pydatetime())
    # The third label is not known yet at as_of; entity 1 gets the feature of time t, not t+1 day.
    assert len(joined) == 2
    row1 = joined[joined[ENTITY] == 1].iloc[0]
    assert row1["x"] == 2.0
    assert (joined["feature_time"] <= joined[EVENT_TIME]).all()
    assert joined[joined[ENTITY] == 2].iloc[0]["x"] == 5.0


@pytest.mark.parametrize(
    "age_days, expected_rows", [pytest.param(None, 1, id="no-limit"), pytest.param(1, 0, id="too-old")]
)
def test_point_in_time_join_feature_age_limit(age_days: int | None, expected_rows: int) -> None:
    t = pd.Timestamp("2026-01-10")
    features = pd.DataFrame({ENTITY: [1], EVENT_TIME: [t - pd.Timedelta(days=5)], "x": [1.0]})
    labels = pd.DataFrame({ENTITY: [1], EVENT_TIME: [t], LABEL: [1.0], LABEL_AVAILABLE_AT: [t]})
    joined = point_in_time_join(labels, features, as_of=t.to_pydatetime(), max_feature_age_days=age_days)
    assert len(joined) == expected_rows
