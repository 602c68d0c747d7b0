"""The PostgreSQL feature store's tables: their names, and the DDL that creates, widens and moves them.

Per use case and kind (``features``, ``labels``) one table, partitioned by day (LIST on
``interval``), each day by the partitions its delivery was checked in (LIST on ``PART``). Beside
them, two ledgers shared by all use cases: ``PARTITIONS`` (a day's manifest, written with the
day) and ``STAGES`` (partitions taken in ahead of their commit). Every function works in the
caller's transaction, on its cursor; names reach SQL only as quoted identifiers.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from mlops.data.features import ENTITY, EVENT_TIME

if TYPE_CHECKING:
    import pyarrow as pa

PARTITIONS = "feature_partitions"
"""The ledger of committed days: one manifest per use case and day."""

STAGES = "feature_stages"
"""The ledger of partitions taken in ahead of their commit (``stage_part``)."""

PART = "__part"
"""The partition of its day a row was checked in (the day's sub-partition key)."""

DDL_LOCK = "mlops.feature_store"
"""The advisory lock (by ``hashtext``) held while the store creates, moves or widens its tables."""

STAGE_TTL = "1 day"
"""A staged partition no commit took within this long is abandoned (its day was quarantined or
re-delivered); a commit drops it."""


def table_name(use_case: str, kind: str) -> str:
    return f"{kind}_{use_case}"


def table(use_case: str, kind: str, day: dt.date | None = None) -> Any:
    """A table (the kind's, or one day of it), as a quoted identifier: names never reach SQL as
    text. A day's table starts ``day_``, a staged one ``stage_``: no use case's name can clash."""
    from psycopg2 import sql

    if day is None:
        return sql.Identifier(table_name(use_case, kind))
    return sql.Identifier(f"day_{kind}_{use_case}_{day:%Y%m%d}")


def _primary_key() -> Any:
    """The columns of the key of every table of rows: the day, the partition, the entity, the time."""
    from psycopg2 import sql

    return sql.SQL("interval, {}, {}, {}").format(
        sql.Identifier(PART), sql.Identifier(ENTITY), sql.Identifier(EVENT_TIME)
    )


def sql_type(kind: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE PRECISION"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    return "TEXT"


def relkind(cur: Any, name: Any) -> str | None:
    """``p`` for a partitioned table, ``r`` for a plain one, None if there is none (any relation)."""
    cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name.as_string(cur),))
    found = cur.fetchone()
    return None if found is None else str(found[0])


def exists(cur: Any, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s)", (name,))
    return cur.fetchone()[0] is not None


def ensure(cur: Any, use_case: str, kind: str, rows: pa.Table) -> None:
    """The kind's partitioned table and the store's ledgers, created if missing; a table of an
    earlier release (one table, not partitioned) is moved into day partitions first.

    Only creating and moving take the store's lock (mapped checks may start on an empty store
    together); once the table exists, stagings and commits do not wait for each other here.
    """
    from psycopg2 import sql

    parent = table(use_case, kind)
    if relkind(cur, parent) == "p":
        _add_new_columns(cur, parent, rows)
        return
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
    _create_ledgers(cur)
    found = relkind(cur, parent)
    if found == "p":  # created while this waited for the lock
        _add_new_columns(cur, parent, rows)
        return
    if found is None:
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(sql_type(f.type))) for f in rows.schema
        )
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (interval DATE NOT NULL, {} INT NOT NULL, {}, PRIMARY KEY ({}))"
                " PARTITION BY LIST (interval)"
            ).format(parent, sql.Identifier(PART), cols, _primary_key())
        )
        return
    _partition_legacy(cur, use_case, kind)


def _create_ledgers(cur: Any) -> None:
    from psycopg2 import sql

    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (use_case TEXT NOT NULL, interval DATE NOT NULL,"
            " manifest JSONB NOT NULL, written_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
            " PRIMARY KEY (use_case, interval))"
        ).format(sql.Identifier(PARTITIONS))
    )
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, use_case TEXT NOT NULL,"
            " kind TEXT NOT NULL, interval DATE NOT NULL, part INT NOT NULL, digest TEXT NOT NULL,"
            " created_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (use_case, kind, interval, part, digest))"
        ).format(sql.Identifier(STAGES))
    )


def _add_new_columns(cur: Any, parent: Any, rows: pa.Table) -> None:
    """Columns of ``rows`` the kind's table lacks (a feature added), added to it and so to
    every day, where they read as null, as a day's Parquet file without them does. A column
    the rows lack (a feature dropped) stays, null in the days written from now on."""
    from psycopg2 import sql

    cur.execute(
        "SELECT attname FROM pg_attribute"
        " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (parent.as_string(cur),),
    )
    have = {row[0] for row in cur.fetchall()}
    new = [f for f in rows.schema if f.name not in have]
    if not new:
        return
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
    for field in new:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                parent, sql.Identifier(field.name), sql.SQL(sql_type(field.type))
            )
        )


def _partition_legacy(cur: Any, use_case: str, kind: str) -> None:
    """Move a table of an earlier release (all days in one table) into day partitions, in the
    caller's transaction."""
    from psycopg2 import sql

    parent, legacy, moving = (
        table(use_case, kind),
        sql.Identifier(f"legacy_{kind}_{use_case}"),
        sql.Identifier(f"partitioned_{kind}_{use_case}"),
    )
    cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(parent, legacy))
    cur.execute(sql.SQL("CREATE TABLE {} (LIKE {}) PARTITION BY LIST (interval)").format(moving, legacy))
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} INT NOT NULL DEFAULT 0").format(moving, sql.Identifier(PART))
    )
    cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(moving, _primary_key()))
    cur.execute(sql.SQL("SELECT DISTINCT interval FROM {}").format(legacy))
    for (day,) in cur.fetchall():
        stage = new_stage(cur, moving, day, 0)
        cur.execute(
            sql.SQL("INSERT INTO {} SELECT *, 0 FROM {} WHERE interval = %s").format(stage, legacy), (day,)
        )
        index_stage(cur, stage)
        cur.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN (%s) PARTITION BY LIST ({})").format(
                table(use_case, kind, day), moving, sql.Identifier(PART)
            ),
            (day,),
        )
        cur.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN (0)").format(
                table(use_case, kind, day), stage
            )
        )
    cur.execute(sql.SQL("DROP TABLE {}").format(legacy))
    cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(moving, parent))


def new_stage(cur: Any, parent: Any, interval: dt.date, index: int) -> Any:
    """A new, empty table shaped like ``parent`` for one partition of one day: its rows get the
    day and the partition by default, and a CHECK saying so lets the attach skip a scan."""
    import uuid

    from psycopg2 import sql

    stage = sql.Identifier(f"stage_{uuid.uuid4().hex}")
    part = sql.Identifier(PART)
    cur.execute(
        sql.SQL("CREATE TABLE {} (LIKE {}, CHECK (interval = %s AND {} = %s))").format(stage, parent, part),
        (interval, index),
    )
    cur.execute(
        sql.SQL("ALTER TABLE {} ALTER interval SET DEFAULT %s, ALTER {} SET DEFAULT %s").format(stage, part),
        (interval, index),
    )
    return stage


def index_stage(cur: Any, stage: Any) -> None:
    """The primary key of the store's tables, built once the rows are in (a sort, faster than
    keeping the index up to date row by row)."""
    from psycopg2 import sql

    cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(stage, _primary_key()))
