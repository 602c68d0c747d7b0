"""The PostgreSQL-backed parts on a real server: the feature store and a SQL source."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import psycopg2
import pytest

from mlops.core.config import get_use_case, parse_use_case
from mlops.data.feature_store import PostgresFeatureStore, Rows
from mlops.data.features import ENTITY, EVENT_TIME, build_features, extract_labels
from mlops.data.ingest import open_batch
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
    rows = pd.concat(
        [simulate_batch("churn", DAY, 50), simulate_batch("churn", DAY + dt.timedelta(days=1), 70)]
    )
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
    opener, fmt, source = open_batch(uc, DAY, "file:///unused")
    with opener() as fh:
        data = fh.read()
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


def _parts(batch: pd.DataFrame, n: int) -> list[tuple[Rows, Rows]]:
    uc = get_use_case("churn")
    size = -(-len(batch) // n)
    chunks = [batch.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(batch), size)]
    return [(Rows.of(build_features(c, uc)), Rows.of(extract_labels(c, uc))) for c in chunks]


def _sql(database: str, query: str) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def _stage_tables(database: str) -> set[str]:
    return {r[0] for r in _sql(database, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'stage\\_%'")}


def test_staged_parts_are_attached_not_copied_again(database: str) -> None:
    """The checks' COPYs become the day's partitions; the commit moves no rows."""
    store = PostgresFeatureStore("it_pg")
    parts = _parts(simulate_batch("churn", DAY, 900), 3)
    for index, (features, labels) in enumerate(parts):
        store.stage_part("churn", DAY, index, features, labels)
        store.stage_part("churn", DAY, index, features, labels)  # a retried check stages nothing more
    staged = _stage_tables(database)
    assert len(staged) == 6
    assert _sql(database, "SELECT count(*) FROM feature_stages") == [(6,)]

    manifest = store.write_partition_parts("churn", DAY, parts, "v1", with_labels=True)

    attached = _sql(
        database,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname LIKE 'day\\_%' AND c.relkind = 'r'",
    )
    assert {r[0] for r in attached} == staged  # the very tables the checks wrote
    assert _sql(database, "SELECT count(*) FROM feature_stages") == [(0,)]
    assert manifest["rows"] == 900 and manifest["label_rows"] == 900
    whole = PostgresFeatureStore("it_pg").read_features("churn", DAY, DAY)
    expected = (
        pd.concat([f.table.to_pandas() for f, _ in parts])
        .sort_values([EVENT_TIME, ENTITY])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(whole[expected.columns], expected, check_dtype=False)
    assert len(store.read_labels("churn", DAY, DAY)) == 900

    # The same day again, from one part that no check staged: COPYed by the commit; the day's
    # three staged tables are gone with the day they made.
    again = _parts(simulate_batch("churn", DAY, 400), 1)
    assert store.write_partition_parts("churn", DAY, again, "v1", with_labels=True)["rows"] == 400
    assert len(store.read_features("churn", DAY, DAY)) == 400
    assert len(_stage_tables(database)) == 2  # features and labels of the one part


def test_a_staging_the_commit_does_not_take_is_dropped(database: str) -> None:
    """Rows staged by other feature code (or an earlier delivery) are not the day's: the commit
    COPYs the rows it has, and drops the staging nothing will take."""
    store = PostgresFeatureStore("it_pg")
    batch = simulate_batch("churn", DAY, 200)
    ((features, labels),) = _parts(batch, 1)
    other = Rows.of(features.table.to_pandas().assign(tenure_months=0))
    store.stage_part("churn", DAY, 0, other, labels)
    store.write_partition_parts("churn", DAY, [(features, labels)], "v2", with_labels=True)
    got = store.read_features("churn", DAY, DAY)
    assert (got["tenure_months"] != 0).any()
    assert _sql(database, "SELECT count(*) FROM feature_stages") == [(0,)]
    assert len(_stage_tables(database)) == 2  # the labels staging was taken; the stale features dropped


def test_checks_staging_at_once_create_the_tables_once(database: str) -> None:
    """Mapped checks start together on an empty store: each creates what it needs, no clash."""
    store = PostgresFeatureStore("it_pg")
    parts = _parts(simulate_batch("churn", DAY, 800), 4)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda ip: store.stage_part("churn", DAY, ip[0], *ip[1]), enumerate(parts)))
    store.write_partition_parts("churn", DAY, parts, "v1", with_labels=True)
    assert len(store.read_features("churn", DAY, DAY)) == 800


def test_a_table_of_an_earlier_release_is_moved_into_day_partitions(database: str) -> None:
    """The store before day partitions kept all days in one table keyed (interval, entity,
    event_time); the first write moves those days into partitions, and nothing is lost."""
    uc = get_use_case("churn")
    days = [DAY, DAY + dt.timedelta(days=1)]
    frames = {day: build_features(simulate_batch("churn", day, 120), uc) for day in days}
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)
    with conn, conn.cursor() as cur:
        cols = ", ".join(
            f'"{c}" {"BIGINT" if c == ENTITY else "TIMESTAMP" if c == EVENT_TIME else "TEXT" if frames[DAY][c].dtype == object else "DOUBLE PRECISION"}'
            for c in frames[DAY].columns
        )
        cur.execute(
            f'CREATE TABLE features_churn (interval DATE NOT NULL, {cols}, PRIMARY KEY (interval, "{ENTITY}", "{EVENT_TIME}"))'
        )
        for day, frame in frames.items():
            buf = io.StringIO()
            frame.assign(interval=day).to_csv(buf, index=False, header=False)
            buf.seek(0)
            names = ", ".join(f'"{c}"' for c in [*frame.columns, "interval"])
            cur.copy_expert(f"COPY features_churn ({names}) FROM STDIN WITH (FORMAT csv)", buf)
    conn.close()

    store = PostgresFeatureStore("it_pg")
    third = DAY + dt.timedelta(days=2)
    batch = simulate_batch("churn", third, 50)
    store.write_partition("churn", third, build_features(batch, uc), extract_labels(batch, uc))

    assert _sql(database, "SELECT relkind FROM pg_class WHERE relname = 'features_churn'") == [("p",)]
    got = store.read_features("churn", DAY, third)
    assert len(got) == 290
    for day, frame in frames.items():
        day_rows = (
            got[got[EVENT_TIME].dt.date == day].sort_values([EVENT_TIME, ENTITY]).reset_index(drop=True)
        )
        expected = frame.sort_values([EVENT_TIME, ENTITY]).reset_index(drop=True)
        pd.testing.assert_frame_equal(day_rows[expected.columns], expected, check_dtype=False)


def test_a_feature_added_later_reads_as_null_on_the_days_before(database: str) -> None:
    """New feature code adds a column: the table takes it (every day has it, null before), as
    the Parquet store's days without it read; a feature dropped later stays, null from then on."""
    uc = get_use_case("churn")
    store = PostgresFeatureStore("it_pg")
    first, second, third = DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    batch = {d: simulate_batch("churn", d, 40) for d in (first, second, third)}
    store.write_partition("churn", first, build_features(batch[first], uc), extract_labels(batch[first], uc))
    added = build_features(batch[second], uc).assign(charges_per_login=1.5)
    store.write_partition("churn", second, added, extract_labels(batch[second], uc), "v2")
    dropped = build_features(batch[third], uc).drop(columns=["tenure_months"])
    store.write_partition("churn", third, dropped, extract_labels(batch[third], uc), "v3")

    got = store.read_features("churn", first, third)
    assert len(got) == 120
    day = got[EVENT_TIME].dt.date
    assert got.loc[day == first, "charges_per_login"].isna().all()
    assert (got.loc[day == second, "charges_per_login"] == 1.5).all()
    assert got.loc[day == third, "tenure_months"].isna().all()
    assert got.loc[day == first, "tenure_months"].notna().all()
