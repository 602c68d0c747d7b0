"""A deterministic stand-in for the upstream systems of the example use cases.

``simulate_batch(use_case, day, ...)`` returns the batch an upstream system would deliver for
one day; ``write_batch`` lands it where the use case's source reads from. The same arguments
always give the same bytes. Knobs: volume (``rows``), drift (shift named features from a date
on) and bad batches (every kind the validation gate must catch).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

BAD_BATCH_KINDS = (
    "missing_column",
    "extra_column",
    "wrong_type",
    "nulls",
    "out_of_range",
    "unknown_category",
    "duplicate_keys",
    "empty_file",
    "unreadable_file",
)


@dataclass(frozen=True)
class Drift:
    """Shift features from ``start`` on: multiply ``scale`` and add ``shift`` per column."""

    start: dt.date
    scale: dict[str, float] = field(default_factory=dict)
    shift: dict[str, float] = field(default_factory=dict)


DEFAULT_DRIFT = {
    "churn": {"scale": {"logins_30d": 0.35}, "shift": {"monthly_charges": 45.0}},
    "delivery_time": {"scale": {"distance_km": 1.8}, "shift": {"courier_load": 0.25}},
}


def _seed(use_case: str, day: dt.date, salt: str = "") -> int:
    digest = hashlib.sha256(f"{use_case}:{day.isoformat()}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _event_times(rng, day: dt.date, n: int):
    import numpy as np
    import pandas as pd

    seconds = np.sort(rng.integers(0, 86_400, size=n))
    return pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s")


def _churn(day: dt.date, rows: int, drift: Drift | None) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(_seed("churn", day))
    pool = max(rows * 4, 20_000)
    ids = rng.choice(pool, size=rows, replace=False) + 1
    # Stable per-customer traits derived from the id, so a customer looks alike across days.
    trait = ((ids * 2654435761) % 1_000_003) / 1_000_003
    tenure = np.floor(trait * 72 + rng.integers(0, 3, rows)).astype(int)
    plan = np.array(["basic", "standard", "premium"])[(ids * 7 + 3) % 3]
    region = np.array(["north", "south", "east", "west"])[(ids * 13 + 1) % 4]
    base_charge = np.select([plan == "basic", plan == "standard"], [29.0, 59.0], 99.0)
    monthly = np.round(base_charge + rng.normal(0, 6, rows), 2).clip(5, 480)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, rows), 2)
    logins = rng.poisson(np.maximum(2.0, 40 * trait + 6), rows)
    support = rng.poisson(0.6 + 1.8 * (1 - trait), rows)
    session = np.round(rng.gamma(2.0, 9.0, rows), 1).clip(0, 590)
    failures = rng.poisson(0.25 + 0.6 * (plan == "basic"), rows)
    frame = pd.DataFrame(
        {
            "customer_id": ids.astype("int64"),
            "event_time": _event_times(rng, day, rows),
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "logins_30d": logins,
            "support_contacts_30d": support,
            "avg_session_minutes": session,
            "payment_failures_90d": failures,
        }
    )
    if drift is not None and day >= drift.start:
        _apply_drift(frame, drift)
    # The outcome depends on the (possibly drifted) behaviour.
    logit = (
        -1.2
        - 0.045 * frame["tenure_months"]
        + 0.018 * (frame["monthly_charges"] - 60)
        - 0.05 * frame["logins_30d"]
        + 0.45 * frame["support_contacts_30d"]
        + 0.6 * frame["payment_failures_90d"]
        + np.where(frame["plan"] == "premium", -0.4, 0.0)
    )
    prob = 1 / (1 + np.exp(-logit))
    frame["churned"] = (rng.uniform(size=rows) < prob).astype(int)
    return frame


def _delivery(day: dt.date, rows: int, drift: Drift | None) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(_seed("delivery_time", day))
    first_id = (day - dt.date(2020, 1, 1)).days * 10_000_000
    times = _event_times(rng, day, rows)
    frame = pd.DataFrame(
        {
            "order_id": np.arange(first_id, first_id + rows, dtype="int64"),
            "ordered_at": times,
            "distance_km": np.round(rng.gamma(2.2, 2.0, rows), 2).clip(0.2, 30),
            "items": rng.integers(1, 12, rows),
            "courier_load": np.round(rng.beta(2, 3, rows), 3),
            "weather": rng.choice(["clear", "rain", "snow", "wind"], size=rows, p=[0.6, 0.25, 0.05, 0.1]),
        }
    )
    if drift is not None and day >= drift.start:
        _apply_drift(frame, drift)
        frame["distance_km"] = frame["distance_km"].clip(upper=59)
        frame["courier_load"] = frame["courier_load"].clip(upper=1.0)
    hour = times.hour
    rush = np.where(((hour >= 11) & (hour <= 13)) | ((hour >= 18) & (hour <= 20)), 7.0, 0.0)
    weather_cost = frame["weather"].map({"clear": 0.0, "rain": 6.0, "snow": 15.0, "wind": 3.0}).to_numpy()
    minutes = (
        12
        + 2.4 * frame["distance_km"]
        + 3.0 * np.log1p(frame["items"])
        + 22 * frame["courier_load"] ** 2
        + rush
        + weather_cost
        + rng.normal(0, 3.0, rows)
    )
    frame["delivery_minutes"] = np.round(minutes.clip(1, 299), 1)
    return frame


def _apply_drift(frame: pd.DataFrame, drift: Drift) -> None:
    for col, factor in drift.scale.items():
        # Integer columns stay integers (truncated), as upstream systems deliver them.
        frame[col] = (frame[col] * factor).astype(frame[col].dtype)
    for col, delta in drift.shift.items():
        frame[col] = frame[col] + delta


GENERATORS = {"churn": _churn, "delivery_time": _delivery}


def simulate_batch(use_case: str, day: dt.date, rows: int = 2000, drift: Drift | None = None) -> pd.DataFrame:
    """The clean batch the upstream system of ``use_case`` delivers for ``day``."""
    if use_case not in GENERATORS:
        raise ValueError(f"no simulator for use case {use_case!r}; known: {sorted(GENERATORS)}")
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    return GENERATORS[use_case](day, rows, drift)


def corrupt(frame: pd.DataFrame, kind: str, *, entity: str, categorical: str, numeric: str) -> pd.DataFrame:
    """Return a copy of ``frame`` broken in the way ``kind`` names (not the file-level kinds)."""
    import numpy as np

    bad = frame.copy()
    n = len(bad)
    if kind == "missing_column":
        return bad.drop(columns=[numeric])
    if kind == "extra_column":
        bad["unexpected_field"] = 1
        return bad
    if kind == "wrong_type":
        bad[numeric] = bad[numeric].astype(str)
        bad.loc[bad.index[: max(1, n // 10)], numeric] = "twelve"
        return bad
    if kind == "nulls":
        bad[numeric] = bad[numeric].astype("float64")
        bad.loc[bad.index[: max(1, n // 5)], numeric] = np.nan
        return bad
    if kind == "out_of_range":
        bad.loc[bad.index[: max(1, n // 20)], numeric] = -999
        return bad
    if kind == "unknown_category":
        bad.loc[bad.index[: max(1, n // 20)], categorical] = "mystery"
        return bad
    if kind == "duplicate_keys":
        import pandas as pd

        dup = bad.iloc[: max(1, n // 10)]
        return pd.concat([bad, dup], ignore_index=True)
    raise ValueError(f"unknown bad batch kind {kind!r}; known: {BAD_BATCH_KINDS}")


BREAK_COLUMNS = {
    "churn": {"categorical": "plan", "numeric": "tenure_months"},
    "delivery_time": {"categorical": "weather", "numeric": "distance_km"},
}


def batch_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buf, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    elif fmt == "parquet":
        frame.to_parquet(buf, index=False)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return buf.getvalue()


def make_batch_bytes(
    use_case: str,
    day: dt.date,
    fmt: str,
    *,
    rows: int = 2000,
    drift: Drift | None = None,
    bad: str | None = None,
) -> bytes:
    """The file an upstream system lands for ``day``: clean, drifted or broken in one way."""
    if bad == "empty_file":
        return b""
    if bad == "unreadable_file":
        return b"\x00\x9f\x12PK garbled transfer \xff\xfe" * 16
    frame = simulate_batch(use_case, day, rows, drift)
    if bad is not None:
        cols = BREAK_COLUMNS[use_case]
        entity = {"churn": "customer_id", "delivery_time": "order_id"}[use_case]
        frame = corrupt(frame, bad, entity=entity, **cols)
    return batch_bytes(frame, fmt)
