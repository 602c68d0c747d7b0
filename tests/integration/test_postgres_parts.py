"""The PostgreSQL-backed parts on a real server: the feature store and a SQL source."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator

import pandas as pd
import psycopg2
import pytest

from mlops.core.config import get_use_case, parse_use_case
from mlops.data.feature_store import PostgresFeatureStore
from mlops.data.features import ENTITY, EVENT_TIME, build_features, extract_labels
from mlops.data.ingest import fetch_batch
from mlops.dev.simulator import simulate_batch

pytestmark = pytest.mark.integration
DAY = dt.date(2026, 4, 1)


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"mlops_it_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("AIRFLOW_CONN_IT_PG", f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_postgres_feature_store_replaces_partitions(database: str) -> None:
    uc = get_use_case("churn")
    store = PostgresFeatureStore("it_pg")
    batches = {d: simulate_batch("churn", d, 300) for d in (DAY, DAY + dt.timedelta(days=1))}
    for day, batch in batches.items():
        store.write_partition("churn", day, build_features(batch, uc), extract_labels(batch, uc))
    again = batches[DAY]
    manifest = store.write_partition("churn", DAY, build_features(again, uc), extract_labels(again, uc))
    feats = store.read_features("churn", DAY, DAY + dt.timedelta(days=1))
    assert len(feats) == 600 and not feats.duplicated([ENTITY, EVENT_TIME]).any()
    assert set(store.partitions("churn")) == set(batches)
    assert store.partitions("churn")[DAY]["content_hash"] == manifest["content_hash"]
    expected = build_features(batches[DAY], uc)
    got = feats[feats[EVENT_TIME].dt.date == DAY].sort_values([EVENT_TIME, ENTITY]).reset_index(drop=True)
    expected = expected.sort_values([EVENT_TIME, ENTITY]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    chunks = list(store.iter_features("churn", DAY, 128))
    assert [len(c) for c in chunks] == [128, 128, 44]
    labels = store.read_labels("churn", DAY, DAY)
    assert len(labels) == 300 and labels["label"].isin([0.0, 1.0]).all()


def test_sql_source_extracts_one_interval_as_parquet(database: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)
    rows = pd.concat([simulate_batch("churn", DAY, 50), simulate_batch("churn", DAY + dt.timedelta(days=1), 70)])
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE snapshots (customer_id BIGINT, event_time TIMESTAMP, plan TEXT, region TEXT, tenure_months INT,"
            " monthly_charges DOUBLE PRECISION, total_charges DOUBLE PRECISION, logins_30d INT, support_contacts_30d INT,"
            " avg_session_minutes DOUBLE PRECISION, payment_failures_90d INT, churned INT)"
        )
        buf = io.StringIO()
        rows.to_csv(buf, index=False, header=False)
        buf.seek(0)
        cur.copy_expert("COPY snapshots FROM STDIN WITH (FORMAT csv)", buf)
    conn.close()
    raw = get_use_case("churn").model_dump(by_alias=True)
    raw["source"] = {
        "kind": "sql",
        "conn_id": "it_pg",
        "query": "SELECT * FROM snapshots WHERE event_time >= %(interval_start)s AND event_time < %(interval_end)s ORDER BY event_time",
    }
    uc = parse_use_case(raw, "churn.yaml")
    data, fmt, source = fetch_batch(uc, DAY, "file:///unused")
    assert fmt == "parquet" and source == "sql://it_pg"
    frame = pd.read_parquet(io.BytesIO(data))
    assert len(frame) == 50 and (pd.to_datetime(frame["event_time"]).dt.date == DAY).all()


def test_postgres_feature_store_keeps_string_keys(database: str) -> None:
    raw = get_use_case("churn").model_dump(by_alias=True)
    raw["schema"]["columns"]["customer_id"] = {"type": "str"}
    uc = parse_use_case(raw, "churn.yaml")
    batch = simulate_batch("churn", DAY, 50)
    batch["customer_id"] = [f"{i:06d}" if i % 2 else f"C-{i}" for i in range(50)]
    store = PostgresFeatureStore("it_pg")
    store.write_partition("churn", DAY, build_features(batch, uc), extract_labels(batch, uc))
    feats = store.read_features("churn", DAY, DAY)
    assert sorted(feats[ENTITY]) == sorted(batch["customer_id"])
    assert {type(k) for k in feats[ENTITY]} == {str}
    chunk = next(iter(store.iter_features("churn", DAY, 100)))
    assert sorted(chunk[ENTITY]) == sorted(batch["customer_id"])
    labels = store.read_labels("churn", DAY, DAY)
    assert set(labels[ENTITY]) == set(batch["customer_id"])


def test_postgres_feature_store_quotes_every_name(database: str) -> None:
    """A column name that is SQL (it cannot pass config validation, but the store must not trust that)."""
    uc = get_use_case("churn")
    batch = simulate_batch("churn", DAY, 20)
    features = build_features(batch, uc)
    hostile = 'x" bigint); DROP TABLE feature_partitions; --'
    features[hostile] = 1.0
    store = PostgresFeatureStore("it_pg")
    store.write_partition("churn", DAY, features, extract_labels(batch, uc))
    store.write_partition("churn", DAY, features, extract_labels(batch, uc))  # replaced, not appended
    assert set(store.partitions("churn")) == {DAY}  # feature_partitions survived
    read = store.read_features("churn", DAY, DAY)
    assert hostile in read.columns and len(read) == 20
