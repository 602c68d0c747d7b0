"""Batch scoring with the production model (``models:/<name>@champion``).

Reads a feature partition in chunks, scores each chunk and streams the predictions into one
Parquet file, so memory stays flat however large the partition is. The output
``predictions/<use_case>/<interval>/predictions.parquet`` is moved into place atomically with a
``_manifest.json`` (rows, time taken, model version, run id, input feature statistics) written
last. A classifier's rows carry the score (the probability) and the predicted label at the
champion's decision threshold (:mod:`mlops.model.threshold`; 0.5 for a version without one). Scoring the same interval with the same champion gives byte-identical predictions.

Which days a run scores (:func:`plan_scoring`): the days it names, except those already scored
with the same champion, features and options (scoring them again would write the same bytes),
plus the committed feature days of the catch-up window that have no predictions at all: the days
that arrived before the first champion existed, or whose scoring failed. The window is the
``UseCase.catch_up_days`` days up to the run's last day (the predictions the drift DAG reads), so a
long history is never rescored by surprise; older days are scored by naming them (``intervals``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.core import faults, layout
from mlops.core.results import FeaturePartition, ScoringManifest
from mlops.data.features import ENTITY, EVENT_TIME
from mlops.model import explain, registry
from mlops.model import threshold as decision
from mlops.model.training import predict_scores

if TYPE_CHECKING:
    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake
    from mlops.data.feature_store import FeatureStore

log = logging.getLogger(__name__)


class NoChampion(LookupError):
    """The use case has no champion yet: there is nothing to score with (not a failure)."""


# The key of a predictions manifest that says what made the predictions (see :func:`scored_with`).
SCORED_WITH = "scored_with"


class FeatureStats:
    """Streaming statistics of the scored features (count, nulls, mean, std, min, max / top values)."""

    def __init__(self, numeric: list[str], categorical: list[str]) -> None:
        self.numeric, self.categorical = numeric, categorical
        self.n = 0
        self.acc: dict[str, dict[str, float]] = {
            c: {"count": 0, "nulls": 0, "sum": 0.0, "sumsq": 0.0, "min": float("inf"), "max": float("-inf")}
            for c in numeric
        }
        self.cats: dict[str, dict[str, int]] = {c: {} for c in categorical}

    def update(self, chunk: pd.DataFrame) -> None:
        self.n += len(chunk)
        for col in self.numeric:
            s = chunk[col]
            a = self.acc[col]
            valid = s.dropna()
            a["nulls"] += int(s.isna().sum())
            a["count"] += len(valid)
            if len(valid):
                a["sum"] += float(valid.sum())
                a["sumsq"] += float((valid.astype("float64") ** 2).sum())
                a["min"] = min(a["min"], float(valid.min()))
                a["max"] = max(a["max"], float(valid.max()))
        for col in self.categorical:
            for value, count in chunk[col].value_counts(dropna=False).items():
                key = str(value)
                self.cats[col][key] = self.cats[col].get(key, 0) + int(count)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col, a in self.acc.items():
            n = a["count"]
            mean = a["sum"] / n if n else None
            var = (a["sumsq"] / n - mean**2) if n and mean is not None else None
            out[col] = {
                "count": int(n),
                "null_fraction": a["nulls"] / self.n if self.n else 0.0,
                "mean": mean,
                "std": max(var, 0.0) ** 0.5 if var is not None else None,
                "min": a["min"] if n else None,
                "max": a["max"] if n else None,
            }
        for col, counts in self.cats.items():
            out[col] = {
                "count": sum(counts.values()),
                "top": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:20]),
            }
        return out


def _explain_baseline(run_id: str) -> dict[str, Any]:
    """The champion's explanation baseline, logged with its training run."""
    import mlflow

    logged = {artifact.path for artifact in registry.configure_mlflow().list_artifacts(run_id)}
    if explain.BASELINE_ARTIFACT not in logged:
        raise RuntimeError(
            f"scoring.explain is on, but the champion's run {run_id} has no {explain.BASELINE_ARTIFACT} "
            "(it was trained before explanations were logged): retrain, or turn scoring.explain off"
        )
    # Listed, so any error reading it (storage, network) is that error, not a missing baseline.
    return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{explain.BASELINE_ARTIFACT}"))


def champion_version(use_case: UseCase) -> Any:
    """The champion's registry entry; NoChampion if the registry says there is none (an outage raises)."""
    client = registry.configure_mlflow()
    version = registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION)
    if version is None:
        raise NoChampion(
            f"no champion yet: train one from the training DAG ({use_case.dag_id('training')}); "
            f"model {use_case.registered_model_name!r} of use case {use_case.name!r} has no 'champion' "
            "alias, so nothing was scored"
        )
    return version


def champion(use_case: UseCase) -> tuple[Any, Any]:
    """The champion's registry entry and its loaded sklearn model; NoChampion if there is none."""
    version = champion_version(use_case)
    return version, registry.load_model(use_case.registered_model_name, version.version)


def scored_with(use_case: UseCase, version: Any, features: FeaturePartition) -> dict[str, Any]:
    """What a day's predictions depend on: the model, the feature partition's content and code, the
    options that change the output. Equal for two runs means byte-identical predictions."""
    return {
        "model_version": str(version.version),
        "model_run_id": version.run_id,
        "features_hash": features["content_hash"],
        "feature_version": features.get("feature_version"),
        "explain": use_case.scoring.explain,
    }


@dataclass(frozen=True)
class ScoringPlan:
    """The days a scoring run scores, and why the others it looked at are left alone."""

    model_version: str
    days: list[dt.date]  # to score, oldest first
    caught_up: list[dt.date]  # among ``days``: committed, never scored, not named by the run
    already_scored: list[dt.date]  # named by an event, but already scored on these features

    def describe(self) -> str:
        parts = [f"champion v{self.model_version}: {len(self.days)} day(s) to score"]
        if self.caught_up:
            parts.append(f"catching up on {', '.join(map(str, self.caught_up))} (committed, never scored)")
        if self.already_scored:
            parts.append(
                f"{', '.join(map(str, self.already_scored))} already scored on these features "
                "(predictions are kept as production made them)"
            )
        return "; ".join(parts)


def plan_scoring(
    use_case: UseCase, named: list[dt.date], up_to: dt.date, lake: Lake, store: FeatureStore
) -> ScoringPlan:
    """The days a scoring run scores: ``named`` (the days the run asks for, or its events name)
    less those already scored on the same features, plus the committed feature days among the
    ``use_case.catch_up_days`` days up to ``up_to`` that have no predictions. NoChampion if there
    is none.

    A named day with no committed features stays in the plan: scoring it fails and says so.
    """
    version = champion_version(use_case)
    committed = store.partitions(use_case.name)
    already, days = [], set()
    for day in named:
        partition = committed.get(day)
        if partition is not None and _same_features(
            _scored(lake, use_case, day), scored_with(use_case, version, partition)
        ):
            # Predictions are the record of what production said on that day: a new champion
            # does not rewrite them.
            already.append(day)
        else:  # never scored, or on other features or other feature code
            days.add(day)
    window = {up_to - dt.timedelta(days=i) for i in range(use_case.catch_up_days)}
    caught_up = sorted(
        day for day in window & committed.keys() - set(named) if _scored(lake, use_case, day) is None
    )
    return ScoringPlan(
        model_version=str(version.version),
        days=sorted(days | set(caught_up)),
        caught_up=caught_up,
        already_scored=sorted(already),
    )


def _same_features(made_with: dict[str, Any] | None, now: dict[str, Any]) -> bool:
    """Whether predictions made with ``made_with`` were made on the features the day has now."""
    keys = ("features_hash", "feature_version", "explain")
    return made_with is not None and all(made_with.get(k) == now[k] for k in keys)


def _scored(lake: Lake, use_case: UseCase, day: dt.date) -> dict[str, Any] | None:
    """What the committed predictions of ``day`` were made with ({} if the manifest does not say);
    None if the day has no committed predictions."""
    rel = layout.predictions_manifest(use_case.name, day)
    if not lake.exists(rel):
        return None
    return dict(lake.read_json(rel).get(SCORED_WITH) or {})


class PredictionStats:
    """The distribution of a day's predictions, kept while scoring so pages never re-read them.

    Scores of a classifier fall into ten fixed bins on [0, 1]; predictions of a regressor are
    summarised by quantiles of a uniform sample (reservoir) of at most ``sample`` values.
    """

    def __init__(self, task: str, sample: int = 20_000, seed: int = 0) -> None:
        import numpy as np

        self.task, self.sample = task, sample
        self.counts = np.zeros(10, dtype="int64")
        self.reservoir = np.empty(0)
        self.seen, self.total = 0, 0.0
        self.rng = np.random.default_rng(seed)

    def update(self, scores: Any) -> None:
        import numpy as np

        scores = np.asarray(scores, dtype="float64")
        self.total += float(scores.sum())
        if self.task == "classification":
            self.counts += np.histogram(np.clip(scores, 0, 1), bins=10, range=(0, 1))[0]
        else:
            room = max(self.sample - len(self.reservoir), 0)
            self.reservoir = np.concatenate([self.reservoir, scores[:room]])
            rest = scores[room:]
            if len(
                rest
            ):  # reservoir sampling, vectorised: value i replaces slot j < sample, j uniform in [0, i]
                slots = self.rng.integers(0, np.arange(self.seen + room, self.seen + len(scores)) + 1)
                keep = slots < self.sample
                self.reservoir[slots[keep]] = rest[keep]
        self.seen += len(scores)

    def summary(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {"count": self.seen, "mean": self.total / self.seen if self.seen else None}
        if self.task == "classification":
            out["bins"] = [round(i / 10, 1) for i in range(11)]
            out["counts"] = [int(c) for c in self.counts]
        elif len(self.reservoir):
            qs = (0.05, 0.25, 0.5, 0.75, 0.95)
            out["quantiles"] = dict(
                zip(
                    [f"p{int(q * 100)}" for q in qs],
                    (float(v) for v in np.quantile(self.reservoir, qs)),
                    strict=True,
                )
            )
        return out


def score_partition(
    use_case: UseCase, interval: dt.date, lake: Lake, store: FeatureStore, *, chunk_rows: int | None = None
) -> ScoringManifest:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.data.tasks import refresh_stale_features

    version, model = champion(use_case)
    registry.check_servable(
        use_case,
        version,
        builder="scoring",
        fix="retrain (trigger the training DAG) and let the gate promote a model of the new features, "
        "or roll the feature change back",
    )
    refresh_stale_features(
        use_case, [interval], lake, store
    )  # built by the code the champion was trained with
    features = store.partitions(use_case.name).get(interval)
    chunk_rows = chunk_rows or use_case.scoring.chunk_rows
    stats = FeatureStats(use_case.numeric_features, use_case.categorical_features)
    predicted = PredictionStats(use_case.task)
    out_col = "score" if use_case.task == "classification" else "prediction"
    classifier = use_case.task == "classification"
    cut = decision.threshold_of(version) if classifier else None  # read once, from the version's tags
    key_type = pa.int64() if use_case.entity_type == "int" else pa.string()
    base = _explain_baseline(version.run_id) if use_case.scoring.explain else None
    contrib_cols = [f"{explain.PREFIX}{name}" for name in use_case.feature_names] if base is not None else []
    schema = pa.schema(
        [
            (ENTITY, key_type),
            (EVENT_TIME, pa.timestamp("us")),
            (out_col, pa.float64()),
            *([(decision.PREDICTED_LABEL, pa.int8())] if cut is not None else []),
            ("model_version", pa.string()),
            ("model_run_id", pa.string()),
            *[(c, pa.float64()) for c in contrib_cols],
        ]
    )
    started = time.perf_counter()
    rows = 0

    def write(fh: Any) -> None:
        nonlocal rows
        with pq.ParquetWriter(fh, schema) as writer:
            for chunk in store.iter_features(use_case.name, interval, chunk_rows):
                scores = predict_scores(model, chunk[use_case.feature_names], use_case.task)
                stats.update(chunk)
                predicted.update(scores)
                n = len(chunk)
                rows += n
                table = pa.table(
                    {
                        ENTITY: pa.array(chunk[ENTITY].to_numpy(), key_type),
                        EVENT_TIME: pa.array(
                            chunk[EVENT_TIME].to_numpy().astype("datetime64[us]"), pa.timestamp("us")
                        ),
                        out_col: pa.array(scores, pa.float64()),
                        **(
                            {decision.PREDICTED_LABEL: pa.array(decision.labels(scores, cut), pa.int8())}
                            if cut is not None
                            else {}
                        ),
                        "model_version": pa.array([str(version.version)] * n, pa.string()),
                        "model_run_id": pa.array([version.run_id] * n, pa.string()),
                        **(
                            {
                                c: pa.array(v, pa.float64())
                                for c, v in explain.contributions(
                                    model, chunk[use_case.feature_names], base, use_case.task, scores
                                ).items()
                            }
                            if base is not None
                            else {}
                        ),
                    },
                    schema=schema,
                )
                writer.write_table(table)

    uri = lake.write_with(layout.predictions_file(use_case.name, interval), write)
    faults.point("score")
    seconds = time.perf_counter() - started
    manifest = ScoringManifest(
        use_case=use_case.name,
        interval=interval.isoformat(),
        uri=uri,
        rows=rows,
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds else None,
        model_name=use_case.registered_model_name,
        model_version=str(version.version),
        model_run_id=version.run_id,
        output_column=out_col,
        feature_stats=stats.summary(),
        prediction_stats=predicted.summary(),
    )
    if cut is not None:
        manifest["decision_threshold"] = cut
    made_with = scored_with(use_case, version, features) if features is not None else {}
    # The file also says what made it, for the next run's "already scored" (the XCom does not carry it).
    record = {**manifest, SCORED_WITH: made_with}
    lake.write_json(layout.predictions_manifest(use_case.name, interval), record)
    log.info(
        "scored %d rows of %r %s with v%s in %.2fs", rows, use_case.name, interval, version.version, seconds
    )
    return manifest


def read_predictions(lake: Lake, use_case: str, days: list[dt.date]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for day in days:
        # Committed days only: the manifest is written after the predictions file is in place.
        if lake.exists(layout.predictions_manifest(use_case, day)):
            with lake.open_read(layout.predictions_file(use_case, day)) as fh:
                frames.append(pd.read_parquet(fh))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
