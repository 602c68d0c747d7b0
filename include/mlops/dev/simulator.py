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
from typing import TYPE_CHECKING, Any

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


def _churn(day: dt.date, rows: int, drift: Drift | None, concept: dt.date | None = None) -> pd.DataFrame:
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
    if concept is not None and day >= concept:
        # Concept drift: a competitor targets long-standing basic-plan customers in two regions;
        # the same inputs now mean a different risk, which a model trained before cannot know.
        logit = (
            -1.0
            + 0.03 * frame["tenure_months"]
            + np.where(frame["plan"] == "basic", 1.4, -0.6)
            + np.where(frame["region"].isin(["south", "east"]), 1.2, -0.8)
            - 0.02 * frame["logins_30d"]
        )
    prob = 1 / (1 + np.exp(-logit))
    frame["churned"] = (rng.uniform(size=rows) < prob).astype(int)
    return frame


def _delivery(day: dt.date, rows: int, drift: Drift | None, concept: dt.date | None = None) -> pd.DataFrame:
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
    per_km = 2.4
    if concept is not None and day >= concept:
        # Concept drift: a new routing system makes distance cost more and rain much less.
        per_km = 4.0
        weather_cost = frame["weather"].map({"clear": 0.0, "rain": 1.0, "snow": 25.0, "wind": 3.0}).to_numpy()
    minutes = (
        12
        + per_km * frame["distance_km"]
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


def simulate_batch(
    use_case: str, day: dt.date, rows: int = 2000, drift: Drift | None = None, concept: dt.date | None = None
) -> pd.DataFrame:
    """The clean batch the upstream system of ``use_case`` delivers for ``day``, with the true label.

    ``drift`` moves the inputs from its start; ``concept`` changes, from that day on, how the
    label depends on the inputs (concept drift), leaving the inputs as they were.
    """
    if use_case not in GENERATORS:
        raise ValueError(f"no simulator for use case {use_case!r}; known: {sorted(GENERATORS)}")
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    return GENERATORS[use_case](day, rows, drift, concept)


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
    concept: dt.date | None = None,
    with_labels: bool = True,
) -> bytes:
    """The file an upstream system lands for ``day``: clean, drifted or broken in one way.

    ``with_labels=False`` is the scoring feed of a use case whose labels come later, on their
    own feed (:func:`make_label_bytes`): the rows carry no label.
    """
    if bad == "empty_file":
        return b""
    if bad == "unreadable_file":
        return b"\x00\x9f\x12PK garbled transfer \xff\xfe" * 16
    frame = simulate_batch(use_case, day, rows, drift, concept)
    if not with_labels:
        frame = frame.drop(columns=[TARGETS[use_case]])
    if bad is not None:
        cols = BREAK_COLUMNS[use_case]
        frame = corrupt(frame, bad, entity=ENTITIES[use_case], **cols)
    return batch_bytes(frame, fmt)


TARGETS = {"churn": "churned", "delivery_time": "delivery_minutes"}
ENTITIES = {"churn": "customer_id", "delivery_time": "order_id"}
EVENT_TIMES = {"churn": "event_time", "delivery_time": "ordered_at"}


@dataclass(frozen=True)
class LabelDelays:
    """How the label system delivers: most labels after ``min_days``..``max_days``, some late, some never."""

    min_days: int = 1
    max_days: int = 4
    late_share: float = 0.05  # arrive ``late_days`` after the usual window
    late_days: int = 10
    missing_share: float = 0.05  # never arrive

    @property
    def horizon(self) -> int:
        return self.max_days + self.late_days


def label_delays(use_case: str, event_day: dt.date, rows: int, delays: LabelDelays) -> list[int | None]:
    """The delay in days of each row's label (None: the label never arrives), reproducible per day."""
    import numpy as np

    rng = np.random.default_rng(_seed(use_case, event_day, "labels"))
    usual = rng.integers(delays.min_days, delays.max_days + 1, rows)
    fate = rng.uniform(size=rows)
    out: list[int | None] = []
    for base, draw in zip(usual, fate, strict=True):
        if draw < delays.missing_share:
            out.append(None)
        elif draw < delays.missing_share + delays.late_share:
            out.append(int(base) + delays.late_days)
        else:
            out.append(int(base))
    return out


def simulate_labels(
    use_case: str,
    delivered_on: dt.date,
    *,
    rows: int = 2000,
    drift: Drift | None = None,
    concept: dt.date | None = None,
    delays: LabelDelays | None = None,
    first_event_day: dt.date | None = None,
) -> pd.DataFrame:
    """The labels the label system delivers on ``delivered_on``: entity, event time and label of
    earlier events (each row of an event day's batch gets its label after its own delay)."""
    import pandas as pd

    delays = delays or LabelDelays()
    parts = []
    for back in range(1, delays.horizon + 1):
        event_day = delivered_on - dt.timedelta(days=back)
        if first_event_day is not None and event_day < first_event_day:
            continue
        batch = simulate_batch(use_case, event_day, rows, drift, concept)
        due = [d == back for d in label_delays(use_case, event_day, len(batch), delays)]
        parts.append(batch.loc[due, [ENTITIES[use_case], EVENT_TIMES[use_case], TARGETS[use_case]]])
    columns = [ENTITIES[use_case], EVENT_TIMES[use_case], TARGETS[use_case]]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return frame.sort_values([EVENT_TIMES[use_case], ENTITIES[use_case]], kind="stable").reset_index(
        drop=True
    )


def make_label_bytes(use_case: str, delivered_on: dt.date, fmt: str, **kwargs: Any) -> bytes:
    """The label file the label system lands for ``delivered_on`` (see :func:`simulate_labels`)."""
    return batch_bytes(simulate_labels(use_case, delivered_on, **kwargs), fmt)


def delivered(path: Any, day: dt.date, *, minutes_after_close: int = 10) -> None:
    """Date a landed local file as upstream would have delivered it: shortly after ``day`` closed.

    Batches for past days are landed all at once by the demo and the tests; without this every
    one of them would look late (``landed_at`` is the file's modification time). Object stores
    set their own times, so only local files are re-dated.
    """
    import os

    local = getattr(path, "protocol", "file") in ("file", "local")
    if not local:
        return
    when = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        minutes=minutes_after_close
    )
    stamp = min(when.timestamp(), dt.datetime.now(dt.UTC).timestamp())
    os.utime(str(getattr(path, "path", path)), (stamp, stamp))
