"""Sample deliveries for ``python -m mlops check``: what a use case's upstream feeds send on a day.

For each feed (the scoring batches, the label feed) the sample comes from, in this order:

1. ``config/samples/<feed>.csv`` or ``.parquet`` (``<feed>`` is the use case's name, or
   ``<name>.labels`` for its label feed): rows the team checks in, shaped like a real delivery.
   Optional. The same rows stand for every day: their event times are moved to that day.
2. The simulator (``mlops.dev.simulator``) for the shipped use cases: today's upstream as it
   delivers now, so a renamed or retyped column in the YAML shows up as a mismatch.
3. Rows synthesized from the declared schema: values inside each column's range or category
   set, and a label that depends on the inputs (so a model can learn something from them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import ColumnSpec, FeedKind, UseCase

SAMPLES_DIR = "samples"
SAMPLE_SUFFIXES = (".csv", ".parquet")


def sample_file(config_dir: Path, stream: str) -> Path | None:
    """The checked-in sample of a feed (``config/samples/<stream>.csv|.parquet``), if there is one."""
    for suffix in SAMPLE_SUFFIXES:
        path = config_dir / SAMPLES_DIR / f"{stream}{suffix}"
        if path.is_file():
            return path
    return None


def sample_source(use_case: UseCase, config_dir: Path, kind: FeedKind = "batch") -> str:
    """Where the sample of a feed comes from, in words for the report."""
    from mlops.dev.simulator import GENERATORS

    path = sample_file(config_dir, use_case.feed(kind).stream)
    if path is not None:
        return (
            f"the sample {path.relative_to(config_dir.parent) if config_dir.parent in path.parents else path}"
        )
    if use_case.name in GENERATORS:
        return "the simulator of the shipped use case"
    return "rows synthesized from the schema"


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "little")


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _moved_to(frame: pd.DataFrame, columns: dict[str, ColumnSpec], name: str, day: dt.date) -> pd.DataFrame:
    """The rows with their event times (column ``name``) moved to ``day`` (each keeps its time of
    day). A sample is shaped like a delivery: the column may be under its source header."""
    import pandas as pd

    out = frame.copy()
    source = columns[name].source
    column = source if source is not None and source in out else name
    if column in out:
        times = pd.to_datetime(out[column], errors="coerce")
        out[column] = pd.Timestamp(day) + (times - times.dt.normalize())
    return out


def batch_for(use_case: UseCase, day: dt.date, config_dir: Path, *, rows: int) -> pd.DataFrame:
    """The scoring feed's delivery for ``day`` (with its label column when labels come in the batch)."""
    from mlops.dev.simulator import GENERATORS, TARGETS, simulate_batch

    path = sample_file(config_dir, use_case.name)
    if path is not None:
        return _moved_to(_read(path), use_case.schema_.columns, use_case.schema_.event_time, day)
    if use_case.name in GENERATORS:
        frame = simulate_batch(use_case.name, day, rows)
        return frame.drop(columns=[TARGETS[use_case.name]]) if use_case.labels is not None else frame
    frame, label = synthesize(use_case, day, rows)
    if use_case.schema_.target is not None:
        frame[use_case.schema_.target] = label
    return frame


def labels_for(
    use_case: UseCase, day: dt.date, config_dir: Path, *, rows: int, first_day: dt.date
) -> pd.DataFrame:
    """The label feed's delivery on ``day``: labels of earlier events (none before ``first_day``)."""
    import pandas as pd

    from mlops.dev.simulator import GENERATORS, simulate_labels

    spec = use_case.labels
    if spec is None:
        raise ValueError(f"use case {use_case.name!r} has no label feed")
    path = sample_file(config_dir, use_case.feed("labels").stream)
    if path is not None:
        return _moved_to(_read(path), spec.columns, spec.event_time, day - dt.timedelta(days=1))
    if use_case.name in GENERATORS:
        return simulate_labels(use_case.name, day, rows=rows, first_event_day=first_day)
    event_day = day - dt.timedelta(days=1)  # synthesized labels arrive the day after their event
    if event_day < first_day:
        return pd.DataFrame({c: pd.Series(dtype=_empty_dtype(col)) for c, col in spec.columns.items()})
    frame, label = synthesize(use_case, event_day, rows)
    schema = use_case.schema_
    out = pd.DataFrame({spec.entity: frame[schema.entity], spec.event_time: frame[schema.event_time]})
    out[spec.label] = label
    return out


def _empty_dtype(col: ColumnSpec) -> str:
    return {"int": "int64", "float": "float64", "datetime": "datetime64[us]", "bool": "bool"}.get(
        col.type, "object"
    )


def synthesize(use_case: UseCase, day: dt.date, rows: int) -> tuple[pd.DataFrame, pd.Series]:
    """Rows of the scoring feed built from the schema, and a label that depends on their values.

    Each numeric column is uniform over its declared range (0..100 when open), each category
    draws from its values; the label is a fixed random mix of them (per use case), with noise:
    a class (classification) or a value inside the target's declared range (regression).
    """
    import numpy as np
    import pandas as pd

    schema = use_case.schema_
    rng = np.random.default_rng(_seed(use_case.name, day.isoformat()))
    weights = np.random.default_rng(_seed(use_case.name, "weights"))
    signal = np.zeros(rows)
    data: dict[str, object] = {}
    seconds = np.sort(rng.integers(0, 86_400, rows))
    for name, col in schema.columns.items():
        if name == schema.target:
            continue
        if name == schema.entity:
            first = (day - dt.date(2000, 1, 1)).days * 1_000_000
            ids = np.arange(first, first + rows, dtype="int64")
            data[name] = ids if col.type == "int" else np.array([f"{name}-{i}" for i in ids], dtype=object)
        elif col.type == "datetime":
            data[name] = pd.Timestamp(day) + pd.to_timedelta(
                seconds if name == schema.event_time else rng.permutation(seconds), unit="s"
            )
        elif col.type in ("int", "float"):
            unit = rng.uniform(size=rows)
            low = col.min if col.min is not None else 0.0
            high = col.max if col.max is not None else low + 100.0
            values = low + (high - low) * unit
            data[name] = np.floor(values).astype("int64") if col.type == "int" else np.round(values, 4)
            signal += weights.normal() * unit
        elif col.type == "category":
            choices = list(col.values or [])
            index = rng.integers(0, len(choices), rows)
            data[name] = np.array(choices, dtype=object)[index]
            signal += weights.normal(size=len(choices))[index]
        elif col.type == "bool":
            flag = rng.uniform(size=rows) < 0.5
            data[name] = flag
            signal += weights.normal() * flag
        else:  # str: a few distinct codes
            data[name] = np.array([f"{name}-{k}" for k in rng.integers(0, 5, rows)], dtype=object)
    frame = pd.DataFrame(data)
    noisy = signal + rng.normal(0, 0.25 * (signal.std() or 1.0), rows)
    return frame, pd.Series(_label(use_case, noisy), index=frame.index)


def _label(use_case: UseCase, signal: object) -> object:
    import numpy as np

    values = np.asarray(signal, dtype="float64")
    target = _target_spec(use_case)
    if use_case.task == "classification":
        positive = values > np.quantile(values, 0.7)
        return positive if target is not None and target.type == "bool" else positive.astype("int64")
    low = target.min if target is not None and target.min is not None else 0.0
    high = target.max if target is not None and target.max is not None else low + 100.0
    spread = values.max() - values.min() or 1.0
    scaled = low + (high - low) * (0.1 + 0.8 * (values - values.min()) / spread)
    return (
        np.floor(scaled).astype("int64")
        if target is not None and target.type == "int"
        else np.round(scaled, 4)
    )


def _target_spec(use_case: UseCase) -> ColumnSpec | None:
    if use_case.labels is not None:
        return use_case.labels.columns[use_case.labels.label]
    target = use_case.schema_.target
    return use_case.schema_.columns[target] if target is not None else None
