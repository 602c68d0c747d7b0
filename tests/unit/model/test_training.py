from __future__ import annotations

import datetime as dt

from mlops.core.config import get_use_case
from mlops.model.training import training_window


def test_a_retrain_window_overrides_the_configured_one() -> None:
    use_case = get_use_case("churn")
    day = dt.date(2026, 3, 31)
    assert training_window(use_case, day)[0] == day - dt.timedelta(days=use_case.training.window_days - 1)
    start, end, as_of = training_window(use_case, day, 7)
    assert (start, end, as_of) == (dt.date(2026, 3, 25), day, dt.datetime(2026, 4, 1))
