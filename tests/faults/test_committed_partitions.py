"""Readers see only committed partitions: a writer that died before its manifest leaves nothing visible."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.features import build_features, extract_labels
from mlops.dev.simulator import simulate_batch
from mlops.model.scoring import read_predictions

pytestmark = pytest.mark.faults
D1, D2 = dt.date(2026, 9, 1), dt.date(2026, 9, 2)


def test_a_partition_without_its_manifest_is_invisible(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    store = ParquetFeatureStore(lake)
    uc = get_use_case("churn")
    for day in (D1, D2):
        batch = simulate_batch("churn", day, 100)
        store.write_partition("churn", day, build_features(batch, uc), extract_labels(batch, uc))
    # The writer of D2 died after moving its files into place, before writing the manifests.
    lake.delete(layout.feature_manifest("churn", D2))
    lake.delete(layout.label_manifest("churn", D2))

    assert set(store.read_features("churn", D1, D2)["event_time"].dt.date) == {D1}
    assert set(store.read_labels("churn", D1, D2)["event_time"].dt.date) == {D1}
    assert set(store.partitions("churn")) == {D1}
    with pytest.raises(FileNotFoundError, match="no committed feature partition"):
        list(store.iter_features("churn", D2, 50))


def test_predictions_without_their_manifest_are_invisible(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    frame = simulate_batch("churn", D1, 10)[["customer_id", "event_time"]].rename(
        columns={"customer_id": "entity_id"}
    )
    for day in (D1, D2):
        lake.write_with(
            layout.predictions_file("churn", day), lambda fh, f=frame: f.to_parquet(fh, index=False)
        )
    lake.write_json(layout.predictions_manifest("churn", D1), {"rows": 10})
    assert len(read_predictions(lake, "churn", [D1, D2])) == 10
