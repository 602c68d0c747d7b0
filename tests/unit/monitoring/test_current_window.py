"""The drift check's current window holds the scored partitions and the online requests of its days."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.features import ENTITY, EVENT_TIME, build_features
from mlops.dev.simulator import simulate_batch
from mlops.monitoring.drift import SOURCE, current_window
from mlops.serving.request_log import RequestLog
from mlops.serving.schema import RequestSchema

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


def score_day(lake: Lake, rows: int) -> None:
    """A committed feature partition and its committed predictions, as the data and scoring DAGs leave them."""
    use_case = get_use_case("churn")
    features = build_features(simulate_batch("churn", DAY, rows=rows), use_case)
    ParquetFeatureStore(lake).write_partition("churn", DAY, features, None)
    predictions = features[[ENTITY, EVENT_TIME]].assign(score=0.5, model_version="1")
    lake.write_with(layout.predictions_file("churn", DAY), lambda fh: predictions.to_parquet(fh))
    lake.write_json(layout.predictions_manifest("churn", DAY), {"rows": rows})


def serve_requests(lake: Lake, rows: int) -> list[dict]:
    use_case = get_use_case("churn")
    batch = simulate_batch("churn", DAY, rows=rows).drop(columns=["churned"])
    schema = RequestSchema(use_case)
    typed = schema.check(
        json.loads(batch.to_json(orient="records", date_format="iso"))
    )  # as clients send them
    log = RequestLog(
        lake,
        use_case,
        wal_dir=Path(lake.uri("_wal").removeprefix("file://")),
        flush_rows=1000,
        flush_seconds=60,
    )
    log.start()
    received = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
    log.append(
        request_id="r1",
        received_at=received,
        rows=typed,
        outputs=[0.9] * rows,
        model_version="2",
        latency_ms=3.0,
    )
    log.close(timeout=10)  # ships the request to the lake
    return typed


def test_scored_rows_and_online_requests_are_both_current(lake: Lake) -> None:
    use_case = get_use_case("churn")
    score_day(lake, rows=40)
    typed = serve_requests(lake, rows=7)
    window = current_window(use_case, [DAY], lake, ParquetFeatureStore(lake))
    assert window[SOURCE].value_counts().to_dict() == {"batch": 40, "online": 7}
    online = window[window[SOURCE] == "online"].reset_index(drop=True)
    schema = RequestSchema(use_case)
    expected = build_features(schema.frame(typed), use_case)
    assert online[expected.columns].equals(expected)
    assert set(online["score"]) == {0.9} and set(online["model_version"]) == {"2"}
    assert set(window[window[SOURCE] == "batch"]["model_version"]) == {"1"}


def test_a_day_with_only_online_traffic_is_current(lake: Lake) -> None:
    serve_requests(lake, rows=5)
    window = current_window(get_use_case("churn"), [DAY], lake, ParquetFeatureStore(lake))
    assert list(window[SOURCE]) == ["online"] * 5


def test_a_day_with_neither_is_empty(lake: Lake) -> None:
    window = current_window(get_use_case("churn"), [DAY], lake, ParquetFeatureStore(lake))
    assert window.empty and SOURCE in window.columns
