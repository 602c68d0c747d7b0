"""Feature transformations, defined once and used by both training and scoring (no train/serve skew).

``build_features`` turns a validated batch into the feature frame keyed by entity and event
time; ``extract_labels`` pulls the target with the time it becomes known; ``point_in_time_join``
builds a training set where each label only sees features known at its time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

    from mlops.core.config import FeatureSpec, UseCase

ENTITY = "entity_id"
EVENT_TIME = "event_time"
LABEL = "label"
LABEL_AVAILABLE_AT = "label_available_at"


def _transform(frame: pd.DataFrame, spec: FeatureSpec) -> pd.Series:
    import numpy as np
    import pandas as pd

    cols = [frame[c] for c in spec.inputs]
    if spec.transform == "passthrough":
        return pd.to_numeric(cols[0], errors="coerce").astype("float64")
    if spec.transform == "log1p":
        return np.log1p(pd.to_numeric(cols[0], errors="coerce").clip(lower=0)).astype("float64")
    if spec.transform == "ratio":
        num = pd.to_numeric(cols[0], errors="coerce").astype("float64")
        den = pd.to_numeric(cols[1], errors="coerce").astype("float64")
        return num / den.where(den != 0)
    if spec.transform == "clip":
        return pd.to_numeric(cols[0], errors="coerce").astype("float64").clip(spec.lower, spec.upper)
    if spec.transform == "category":
        return cols[0].astype("string").astype("object")
    if spec.transform == "hour_of_day":
        return pd.to_datetime(cols[0]).dt.hour.astype("float64")
    if spec.transform == "day_of_week":
        return pd.to_datetime(cols[0]).dt.dayofweek.astype("float64")
    if spec.transform == "code":
        return _code(frame, spec)
    raise ValueError(f"feature {spec.name!r}: unknown transform {spec.transform!r}")


def _code(frame: pd.DataFrame, spec: FeatureSpec) -> pd.Series:
    """A feature computed by the team's own function: one value per row, numeric or categorical."""
    import pandas as pd

    from mlops.core.feature_repo import load_function

    assert spec.function is not None
    values = load_function(spec.function)(frame.copy())
    if len(values) != len(frame):
        raise ValueError(
            f"feature {spec.name!r}: {spec.function} returned {len(values)} values for {len(frame)} rows"
        )
    series = pd.Series(pd.Series(values).to_numpy(), index=frame.index)
    if spec.dtype == "category":
        return series.astype("string").astype("object")
    return pd.to_numeric(series, errors="coerce").astype("float64")


def entity_keys(values: pd.Series, key_type: str) -> Any:
    """Entity keys of the declared type: int64, or text exactly as delivered (never re-parsed)."""
    if key_type == "int":
        return values.astype("int64").to_numpy()
    return values.astype("string").astype(object).to_numpy()


def build_features(batch: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """The feature rows for a batch: entity_id, event_time, then one column per feature."""
    import pandas as pd

    schema = use_case.schema_
    missing = [c for f in use_case.features for c in f.inputs if c not in batch.columns]
    if missing:
        raise ValueError(
            f"use case {use_case.name!r}: batch lacks feature input columns {sorted(set(missing))}"
        )
    out = pd.DataFrame(
        {
            ENTITY: entity_keys(batch[schema.entity], use_case.entity_type),
            EVENT_TIME: pd.to_datetime(batch[schema.event_time]).astype("datetime64[us]").to_numpy(),
        }
    )
    for spec in use_case.features:
        out[spec.name] = _transform(batch, spec).to_numpy()
    return out


def extract_labels(batch: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """entity_id, event_time, label and the time the label becomes known (event + label delay).

    For a use case whose labels come in the batch (``schema.target``).
    """
    import pandas as pd

    schema = use_case.schema_
    if schema.target is None:
        raise ValueError(
            f"use case {use_case.name!r} has no label column in its batches: labels come from its label feed"
        )
    event_time = pd.to_datetime(batch[schema.event_time]).astype("datetime64[us]")
    return pd.DataFrame(
        {
            ENTITY: entity_keys(batch[schema.entity], use_case.entity_type),
            EVENT_TIME: event_time.to_numpy(),
            LABEL: pd.to_numeric(batch[schema.target]).astype("float64").to_numpy(),
            LABEL_AVAILABLE_AT: (event_time + pd.Timedelta(days=schema.label_delay_days)).to_numpy(),
        }
    )


def delivered_labels(labels: pd.DataFrame, use_case: UseCase, delivered_on: dt.date) -> pd.DataFrame:
    """The label table rows of one delivery of the label feed: known from the end of its day."""
    import datetime as dt

    import pandas as pd

    spec = use_case.labels
    if spec is None:
        raise ValueError(f"use case {use_case.name!r} has no label feed")
    known_at = pd.Timestamp(dt.datetime.combine(delivered_on + dt.timedelta(days=1), dt.time()))
    return pd.DataFrame(
        {
            ENTITY: entity_keys(labels[spec.entity], use_case.entity_type),
            EVENT_TIME: pd.to_datetime(labels[spec.event_time]).astype("datetime64[us]").to_numpy(),
            LABEL: pd.to_numeric(labels[spec.label]).astype("float64").to_numpy(),
            LABEL_AVAILABLE_AT: pd.Series(known_at, index=labels.index).astype("datetime64[us]").to_numpy(),
        }
    )


def point_in_time_join(
    labels: pd.DataFrame,
    features: pd.DataFrame,
    *,
    as_of: dt.datetime,
    max_feature_age_days: int | None = None,
) -> pd.DataFrame:
    """Join each label known by ``as_of`` to the latest feature row at or before its event time.

    A label joins only features whose event_time <= the label's event_time, and only labels whose
    ``label_available_at`` <= ``as_of`` are used: nothing from the future leaks into training.
    """
    import pandas as pd

    known = labels[labels[LABEL_AVAILABLE_AT] <= pd.Timestamp(as_of)]
    if known.empty:
        return known.assign(**{c: pd.Series(dtype="float64") for c in features.columns if c not in known})
    left = known.sort_values(EVENT_TIME, kind="stable")
    right = features.sort_values(EVENT_TIME, kind="stable").rename(columns={EVENT_TIME: "feature_time"})
    right[EVENT_TIME] = right["feature_time"]
    tolerance = pd.Timedelta(days=max_feature_age_days) if max_feature_age_days else None
    joined = pd.merge_asof(
        left,
        right,
        on=EVENT_TIME,
        by=ENTITY,
        direction="backward",
        allow_exact_matches=True,
        tolerance=tolerance,
    )
    joined = joined.dropna(subset=["feature_time"])
    return joined.sort_values([EVENT_TIME, ENTITY], kind="stable").reset_index(drop=True)
