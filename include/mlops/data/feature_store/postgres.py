"""The PostgreSQL feature store (the production stack): tables ``features_<use_case>`` and
``labels_<use_case>`` in the database of the ``MLOPS_FEATURE_STORE_CONN_ID`` connection
(their layout and DDL: ``postgres_schema``)."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops.core import faults
from mlops.core.results import FeaturePartition, LabelPartition
from mlops.data.feature_store import postgres_schema as pg
from mlops.data.feature_store.base import (
    FeatureStore,
    Parts,
    label_manifest,
    partition_manifest,
    text_for_null,
)
from mlops.data.feature_store.hashing import FrameHash, Rows
from mlops.data.features import ENTITY, EVENT_TIME, LABEL_AVAILABLE_AT

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops.core.layout import FeatureKind


_CONNECT_OPTIONS = {"sslmode", "connect_timeout", "options"}
"""The connection's extras passed on to psycopg2."""


class PostgresFeatureStore(FeatureStore):
    """Tables in PostgreSQL, partitioned by day (LIST on ``interval``), each day by the partitions
    its delivery was checked in (LIST on ``__part``).

    A mapped check COPYs its partition into a table of its own and indexes it (``stage_part``),
    so the workers share that work; the commit attaches those tables as the day's partition and
    drops the day's old one, in one short transaction. A part no check staged (the checks ran
    without the store, or its rows were built again by other feature code) is COPYed by the
    commit itself, in the same transaction.
    """

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    def _connect(self) -> Any:
        # psycopg2 directly, from the Airflow connection: the Postgres provider's hook may hand out
        # psycopg 3 connections, whose COPY API differs.
        import psycopg2
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(self.conn_id)
        return psycopg2.connect(
            host=conn.host or "localhost",
            port=conn.port or 5432,
            user=conn.login,
            password=conn.password,
            dbname=conn.schema or "postgres",
            **{k: v for k, v in (conn.extra_dejson or {}).items() if k in _CONNECT_OPTIONS},
        )

    # Writing ---------------------------------------------------------------------------------
    def _stage(
        self, cur: Any, use_case: str, kind: str, interval: dt.date, index: int, rows: pa.Table
    ) -> Any:
        """A table holding ``rows`` as partition ``index`` of the day, ready to attach (in the
        caller's transaction, after ``pg.ensure``).

        The rows go as CSV written by Arrow (a tenth of the time pandas takes): text quoted,
        a null as an unquoted empty field, which is PostgreSQL's CSV null.
        """
        import pyarrow.csv as pacsv
        from psycopg2 import sql

        stage = pg.new_stage(cur, pg.table(use_case, kind), interval, index)
        buf = io.BytesIO()
        pacsv.write_csv(
            rows.cast(text_for_null(rows.schema)),
            buf,
            pacsv.WriteOptions(include_header=False, quoting_style="needed"),
        )
        buf.seek(0)
        cols = sql.SQL(", ").join(sql.Identifier(name) for name in rows.column_names)
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(stage, cols)
        cur.copy_expert(copy.as_string(cur), buf)
        pg.index_stage(cur, stage)
        return stage

    def stage_part(
        self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None
    ) -> None:
        """COPY one checked partition into tables of its own, indexed, for the commit to attach;
        recorded in the ledger by what the rows are, so running it twice stages them once."""
        from psycopg2 import sql

        stages = sql.Identifier(pg.STAGES)
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                for kind, rows in (("features", features), ("labels", labels)):
                    if rows is None:
                        continue
                    pg.ensure(cur, use_case, kind, rows.table)
                    digest = rows.digest()
                    cur.execute(
                        sql.SQL(
                            "SELECT 1 FROM {} WHERE use_case = %s AND kind = %s AND interval = %s"
                            " AND part = %s AND digest = %s"
                        ).format(stages),
                        (use_case, kind, interval, index, digest),
                    )
                    if cur.fetchone() is not None:
                        continue
                    stage = self._stage(cur, use_case, kind, interval, index, rows.table)
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO {} (name, use_case, kind, interval, part, digest)"
                            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING name"
                        ).format(stages),
                        (stage.strings[0], use_case, kind, interval, index, digest),
                    )
                    if cur.fetchone() is None:  # the same rows staged meanwhile by a twin of this task
                        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
        finally:
            conn.close()

    def _take_stage(
        self, cur: Any, use_case: str, kind: str, interval: dt.date, index: int, rows: Rows
    ) -> Any:
        """The table holding these rows as partition ``index``: the one a check staged, taken off
        the ledger (its row locked until the commit), or one COPYed now."""
        from psycopg2 import sql

        pg.ensure(cur, use_case, kind, rows.table)
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE name = (SELECT name FROM {} WHERE use_case = %s AND kind = %s"
                " AND interval = %s AND part = %s AND digest = %s FOR UPDATE) RETURNING name"
            ).format(sql.Identifier(pg.STAGES), sql.Identifier(pg.STAGES)),
            (use_case, kind, interval, index, rows.digest()),
        )
        found = cur.fetchone()
        if found is not None and pg.relkind(cur, sql.Identifier(found[0])) is not None:
            return sql.Identifier(found[0])
        return self._stage(cur, use_case, kind, interval, index, rows.table)

    def _swap_day(self, cur: Any, use_case: str, kind: str, interval: dt.date, stages: list[Any]) -> None:
        """Make ``stages`` the day's partitions, dropping what the day held (in the caller's transaction)."""
        from psycopg2 import sql

        day = pg.table(use_case, kind, interval)
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(day))
        cur.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN (%s) PARTITION BY LIST ({})").format(
                day, pg.table(use_case, kind), sql.Identifier(pg.PART)
            ),
            (interval,),
        )
        for index, stage in enumerate(stages):
            attach = sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN (%s)").format(day, stage)
            cur.execute(attach, (index,))
        # What no commit took: this day's other stagings (an earlier delivery), and any left too long.
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE use_case = %s"
                " AND ((kind = %s AND interval = %s) OR created_at < now() - %s::interval) RETURNING name"
            ).format(sql.Identifier(pg.STAGES)),
            (use_case, kind, interval, pg.STAGE_TTL),
        )
        for (name,) in cur.fetchall():
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))

    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
        rows = Rows.of(labels)
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                stage = self._take_stage(cur, use_case, "labels", interval, 0, rows)
                self._swap_day(cur, use_case, "labels", interval, [stage])
        finally:
            conn.close()
        return label_manifest(use_case, interval, labels)

    def write_partition_parts(
        self,
        use_case: str,
        interval: dt.date,
        parts: Parts,
        feature_version: str | None = None,
        *,
        with_labels: bool,
    ) -> FeaturePartition:
        """A day's rows from consecutive parts (staged by the checks, or COPYed here), swapped in
        as the day in one transaction."""
        from psycopg2 import sql

        feature_hash, label_hash = FrameHash(), FrameHash() if with_labels else None
        stages: dict[str, list[Any]] = {"features": [], "labels": []}
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                for i, (features, labels) in enumerate(parts):
                    stages["features"].append(
                        self._take_stage(cur, use_case, "features", interval, i, features)
                    )
                    feature_hash.update_rows(features.hashes, features.table.column_names)
                    if label_hash is not None:
                        if labels is None:
                            raise ValueError("a part without labels in a day written with labels")
                        stages["labels"].append(
                            self._take_stage(cur, use_case, "labels", interval, i, labels)
                        )
                        label_hash.update_rows(labels.hashes, labels.table.column_names)
                for kind, taken in stages.items():
                    if taken:
                        self._swap_day(cur, use_case, kind, interval, taken)
                manifest = partition_manifest(use_case, interval, feature_hash, label_hash, feature_version)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (use_case, interval, manifest) VALUES (%s, %s, %s)"
                        " ON CONFLICT (use_case, interval)"
                        " DO UPDATE SET manifest = EXCLUDED.manifest, written_at = now()"
                    ).format(sql.Identifier(pg.PARTITIONS)),
                    (use_case, interval, json.dumps(manifest)),
                )
                faults.point("materialize")  # before COMMIT: PostgreSQL rolls the partition back
        finally:
            conn.close()
        return manifest

    # Reading ---------------------------------------------------------------------------------
    def _read(self, kind: FeatureKind, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        import pandas as pd
        from psycopg2 import sql

        conn = self._connect()
        try:
            with conn.cursor() as cur:
                if not pg.exists(cur, pg.table_name(use_case, kind)):
                    return pd.DataFrame()
                cur.execute(
                    sql.SQL(
                        "SELECT * FROM {} WHERE interval BETWEEN %s AND %s ORDER BY interval, {}, {}"
                    ).format(pg.table(use_case, kind), sql.Identifier(EVENT_TIME), sql.Identifier(ENTITY)),
                    (start, end),
                )
                names = [d[0] for d in cur.description]
                frame = pd.DataFrame(cur.fetchall(), columns=names).drop(columns=["interval", pg.PART])
        finally:
            conn.close()
        for col in frame.columns:
            # Keys keep the type PostgreSQL gives them (BIGINT or TEXT, as written); text values
            # of other columns are numbers where all of them parse.
            if frame[col].dtype == object and col not in (ENTITY, EVENT_TIME):
                frame[col] = _numeric_if_possible(frame[col])
        for col in (EVENT_TIME, LABEL_AVAILABLE_AT):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
        return frame

    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pandas as pd
        from psycopg2 import sql

        conn = self._connect()
        try:
            with conn.cursor(name=f"scan_{use_case}") as cur:  # server-side cursor: rows stream in chunks
                cur.itersize = chunk_rows
                cur.execute(
                    sql.SQL("SELECT * FROM {} WHERE interval = %s ORDER BY {}, {}").format(
                        pg.table(use_case, "features"), sql.Identifier(EVENT_TIME), sql.Identifier(ENTITY)
                    ),
                    (interval,),
                )
                names = None
                while True:
                    rows = cur.fetchmany(chunk_rows)
                    if names is None:
                        names = [d[0] for d in cur.description]
                    if not rows:
                        break
                    frame = pd.DataFrame(rows, columns=names).drop(columns=["interval", pg.PART])
                    frame[EVENT_TIME] = pd.to_datetime(frame[EVENT_TIME]).astype("datetime64[us]")
                    yield frame
        finally:
            conn.close()

    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]:
        from psycopg2 import sql

        conn = self._connect()
        try:
            with conn.cursor() as cur:
                if not pg.exists(cur, pg.PARTITIONS):
                    return {}
                cur.execute(
                    sql.SQL("SELECT interval, manifest FROM {} WHERE use_case = %s").format(
                        sql.Identifier(pg.PARTITIONS)
                    ),
                    (use_case,),
                )
                return {row[0]: row[1] for row in cur.fetchall()}
        finally:
            conn.close()


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """A column read back as text (e.g. NUMERIC from PostgreSQL) as numbers, if all of it parses."""
    import pandas as pd

    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError):
        return column
