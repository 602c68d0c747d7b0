"""Upstream headers that are not column names ("mean radius"): a column's ``source`` in the config.

A delivery is archived as received; parsing renames each source header to its column's name, so
the gate, the features and the store see column names only.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import ConfigError, UseCase, load_use_case_file, parse_use_case
from mlops.core.lake import Lake
from mlops.data.feature_store import ParquetFeatureStore
from mlops.data.ingest import archive_stream, read_manifest
from mlops.data.parsing import BatchUnreadable, read_batch
from mlops.data.tasks import BatchRejected, materialize_features, store_labels, validate_batch
from tests.unit.core.test_config_labels import CHURN, label_feed_config
from tests.unit.data.test_label_days import config_of

DAY = dt.date(2026, 5, 2)
AS_OF = dt.datetime(2026, 5, 3, 1, tzinfo=dt.UTC)
HEADER = "Sample ID,measured at,mean radius,mean texture,Clinic Region,malignant"
ROWS = [
    f"00{101 + i},2026-05-02T{8 + i % 10:02d}:{i:02d}:00,{12 + i * 0.5},{20 - i * 0.25},"
    f"{'north' if i % 2 else 'south'},{i % 2}"
    for i in range(24)
]


def cells_config(partition_mb: float = 0) -> dict[str, Any]:
    """A use case whose upstream names its columns in words, with spaces and capitals."""
    raw = copy.deepcopy(CHURN)
    raw["name"] = "cells"
    raw["source"] = {"kind": "files", "format": "csv", "uri": "{landing}/cells/{interval}.csv"}
    raw["source"]["partition_mb"] = partition_mb
    raw["schema"] = {
        "entity": "sample_id",
        "event_time": "event_time",
        "target": "malignant",
        "columns": {
            "sample_id": {"type": "str", "source": "Sample ID"},
            "event_time": {"type": "datetime", "source": "measured at"},
            "mean_radius": {"type": "float", "min": 0, "max": 50, "source": "mean radius"},
            "mean_texture": {"type": "float", "min": 0, "max": 50, "source": "mean texture"},
            "clinic": {"type": "category", "values": ["north", "south"], "source": "Clinic Region"},
            "malignant": {"type": "int", "min": 0, "max": 1},
        },
    }
    raw["expectations"] = {"min_rows": 1}
    raw["features"] = [
        {"name": "mean_radius", "transform": "passthrough", "inputs": ["mean_radius"]},
        {"name": "radius_per_texture", "transform": "ratio", "inputs": ["mean_radius", "mean_texture"]},
        {"name": "clinic", "transform": "category", "inputs": ["clinic"]},
    ]
    raw["promotion"].pop("slices")
    raw["drift"]["critical_features"] = ["mean_radius"]
    return raw


def csv(header: str = HEADER, rows: list[str] = ROWS) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def delivered(tmp_path: Path, data: bytes, partition_mb: float = 0) -> tuple[UseCase, Lake, Path]:
    """The cells use case (config folder and suites under ``tmp_path``) and a lake holding ``data``
    as its archived delivery of DAY."""
    config = config_of(tmp_path, cells_config(partition_mb))
    use_case = load_use_case_file(config / "use_cases" / "cells.yaml")
    lake = Lake(f"file://{tmp_path}/lake")
    archive_stream(lake, "cells", DAY, lambda: io.BytesIO(data), "csv", "test", "t")
    return use_case, lake, config


@pytest.mark.parametrize(
    "partition_mb", [pytest.param(0, id="whole-day"), pytest.param(0.0005, id="partitions")]
)
def test_a_delivery_with_source_headers_validates_and_builds_features(
    tmp_path: Path, partition_mb: float
) -> None:
    data = csv()
    use_case, lake, config = delivered(tmp_path, data, partition_mb)

    summary = validate_batch(use_case, DAY, lake, config, as_of=AS_OF)
    assert (summary["passed"], summary["rows"], summary["errors"]) == (True, len(ROWS), [])
    assert (len(summary["parts"]) > 1) == (partition_mb > 0)

    store = ParquetFeatureStore(lake)
    materialize_features(use_case, DAY, lake, store)
    day = store.read_day("cells", DAY)
    assert day is not None and day.labels is not None
    features = day.features.sort_values("entity_id").reset_index(drop=True)
    assert list(features.columns) == [
        "entity_id",
        "event_time",
        "mean_radius",
        "radius_per_texture",
        "clinic",
    ]
    # Keys typed as text by their header: leading zeros kept.
    assert features["entity_id"].tolist() == [f"00{101 + i}" for i in range(len(ROWS))]
    assert features["mean_radius"].tolist() == [12 + i * 0.5 for i in range(len(ROWS))]
    assert features["clinic"].tolist() == ["north" if i % 2 else "south" for i in range(len(ROWS))]
    assert sorted(day.labels["label"].tolist()) == sorted(float(i % 2) for i in range(len(ROWS)))

    # The archive keeps the delivery's bytes, headers and all.
    manifest = read_manifest(lake, "cells", DAY)
    raw = layout.raw_object("cells", DAY, manifest["sha256"], "csv")
    assert lake.read_bytes(raw) == data

    # Built again from the archive (staging is gone after the commit): the same features.
    materialize_features(use_case, DAY, lake, store)
    again = store.read_day("cells", DAY)
    assert again is not None
    assert again.features.sort_values("entity_id").reset_index(drop=True).equals(features)


def test_a_delivery_may_carry_the_column_names_instead(tmp_path: Path) -> None:
    header = HEADER.replace("mean radius", "mean_radius").replace("Sample ID", "sample_id")
    use_case, lake, config = delivered(tmp_path, csv(header))
    assert validate_batch(use_case, DAY, lake, config, as_of=AS_OF)["passed"]


def test_a_missing_source_header_is_a_validation_error_naming_it(tmp_path: Path) -> None:
    use_case, lake, config = delivered(tmp_path, csv(HEADER.replace("mean radius", "radius")))
    with pytest.raises(BatchRejected, match="no header 'mean radius'") as err:
        validate_batch(use_case, DAY, lake, config, as_of=AS_OF)
    assert "column 'mean_radius'" in str(err.value)
    reason = lake.read_json(layout.quarantine_reason("cells", DAY))
    missing = [e for e in reason["errors"] if e["expectation"] == "expect_column_to_exist"]
    assert [(e["column"], e["header"]) for e in missing] == [("mean_radius", "mean radius")]


def test_a_delivery_with_both_the_source_and_the_name_is_refused(tmp_path: Path) -> None:
    rows = [f"{row},1.0" for row in ROWS]
    use_case, lake, config = delivered(tmp_path, csv(HEADER + ",mean_radius", rows))
    with pytest.raises(BatchRejected, match=r"both 'mean radius' .* and 'mean_radius'"):
        validate_batch(use_case, DAY, lake, config, as_of=AS_OF)


def test_a_parquet_delivery_is_renamed_too() -> None:
    import pandas as pd

    use_case = parse_use_case(cells_config(), "cells.yaml")
    frame = read_batch(csv(), use_case, "csv")
    upstream = frame.rename(columns={"mean_radius": "mean radius", "sample_id": "Sample ID"})
    buf = io.BytesIO()
    upstream.to_parquet(buf, index=False)
    parsed = read_batch(buf.getvalue(), use_case, "parquet")
    assert list(parsed.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(parsed, frame)


def test_a_label_feed_with_source_headers_is_stored(tmp_path: Path) -> None:
    raw = label_feed_config()
    columns = raw["labels"]["columns"]
    columns["customer_id"]["source"] = "Customer ID"
    columns["event_time"]["source"] = "Event Time"
    columns["churned"]["source"] = "Churned?"
    config = config_of(tmp_path, raw)
    use_case = load_use_case_file(config / "use_cases" / "churn.yaml")
    lake = Lake(f"file://{tmp_path}/lake")
    data = b"Customer ID,Event Time,Churned?\n101,2026-05-01T10:00:00,1\n102,2026-05-01T11:00:00,0\n"
    archive_stream(lake, "churn.labels", DAY, lambda: io.BytesIO(data), "csv", "test", "t")

    summary = validate_batch(use_case, DAY, lake, config, feed="labels", as_of=AS_OF)
    assert (summary["passed"], summary["rows"]) == (True, 2)
    store = ParquetFeatureStore(lake)
    assert store_labels(use_case, DAY, lake, store)["rows"] == 2
    labels = store.read_labels("churn", DAY, DAY).sort_values("entity_id")
    assert labels["entity_id"].tolist() == [101, 102]
    assert labels["label"].tolist() == [1.0, 0.0]


def test_a_label_file_missing_its_source_header_names_it(tmp_path: Path) -> None:
    raw = label_feed_config()
    raw["labels"]["columns"]["churned"]["source"] = "Churned?"
    config = config_of(tmp_path, raw)
    use_case = load_use_case_file(config / "use_cases" / "churn.yaml")
    lake = Lake(f"file://{tmp_path}/lake")
    data = b"customer_id,event_time,churn\n101,2026-05-01T10:00:00,1\n"
    archive_stream(lake, "churn.labels", DAY, lambda: io.BytesIO(data), "csv", "test", "t")
    with pytest.raises(BatchRejected, match=r"no header 'Churned\?'"):
        validate_batch(use_case, DAY, lake, config, feed="labels", as_of=AS_OF)


def test_read_batch_refuses_a_header_of_two_columns() -> None:
    use_case = parse_use_case(cells_config(), "cells.yaml")
    with pytest.raises(BatchUnreadable, match=r"'Sample ID' .*'sample_id'"):
        read_batch(csv(HEADER + ",sample_id", [f"{row},x" for row in ROWS]), use_case, "csv")


# --- the config ------------------------------------------------------------------------------


def _rejected(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_use_case(raw, f"{raw['name']}.yaml")
    return err.value


def test_two_columns_with_one_source_are_a_config_error_naming_both() -> None:
    raw = cells_config()
    raw["schema"]["columns"]["mean_texture"]["source"] = "mean radius"
    err = _rejected(raw)
    assert err.key == "schema.columns"
    assert "'mean_radius' and 'mean_texture' both have source 'mean radius'" in err.problem


def test_a_source_that_is_another_columns_name_is_a_config_error_naming_both() -> None:
    raw = cells_config()
    raw["schema"]["columns"]["mean_texture"]["source"] = "mean_radius"
    err = _rejected(raw)
    assert err.key == "schema.columns"
    assert "column 'mean_texture' has source 'mean_radius'" in err.problem
    assert "the name of column 'mean_radius'" in err.problem


def test_a_label_feed_source_clash_names_its_key() -> None:
    raw = label_feed_config()
    raw["labels"]["columns"]["churned"]["source"] = "customer_id"
    err = _rejected(raw)
    assert err.key == "labels.columns"
    assert "'churned'" in err.problem and "'customer_id'" in err.problem


@pytest.mark.parametrize("source", [pytest.param("", id="empty"), pytest.param("  ", id="blank"),
                                    pytest.param("a\nb", id="two-lines")])  # fmt: skip
def test_a_source_must_be_a_header(source: str) -> None:
    raw = cells_config()
    raw["schema"]["columns"]["mean_radius"]["source"] = source
    assert _rejected(raw).key == "schema.columns.mean_radius.source"


def test_a_column_named_like_its_header_points_to_source() -> None:
    raw = cells_config()
    raw["schema"]["columns"]["mean texture"] = raw["schema"]["columns"].pop("mean_texture")
    err = _rejected(raw)
    assert err.key == "schema.columns"
    assert "'mean_texture'" in err.problem and "source: 'mean texture'" in err.problem


def test_a_source_equal_to_its_own_name_is_allowed() -> None:
    raw = cells_config()
    raw["schema"]["columns"]["malignant"]["source"] = "malignant"
    assert parse_use_case(raw, "cells.yaml").schema_.columns["malignant"].source == "malignant"


def test_a_checked_in_sample_with_source_headers_is_moved_to_its_day(tmp_path: Path) -> None:
    from mlops.dev.samples import batch_for
    from mlops.dev.simulator import batch_bytes

    config = config_of(tmp_path, cells_config())
    (config / "samples").mkdir()
    (config / "samples" / "cells.csv").write_bytes(csv())
    use_case = load_use_case_file(config / "use_cases" / "cells.yaml")
    sample = batch_for(use_case, DAY + dt.timedelta(days=10), config, rows=5)
    moved = read_batch(batch_bytes(sample, "csv"), use_case, "csv")
    shift = moved["event_time"] - read_batch(csv(), use_case, "csv")["event_time"]
    assert shift.unique().tolist() == [dt.timedelta(days=10)]
