"""The feature store: feature and label rows keyed by entity and event time, one partition per day.

Two backends behind one interface, chosen by ``MLOPS_FEATURE_STORE``:

* ``parquet`` (embedded default): ``features/<use_case>/<interval>.parquet`` in the lake.
* ``postgres`` (production stack): tables ``features_<use_case>`` and ``labels_<use_case>`` in
  the database of the ``MLOPS_FEATURE_STORE_CONN_ID`` connection, partitioned by day, each day
  by the partitions its delivery was checked in.

Writing a partition replaces it whole (an atomic file move, or one transaction that swaps the
day's table), so re-materialising an interval never duplicates rows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from mlops.core import faults, layout
from mlops.core.results import FeaturePartition, LabelPartition
from mlops.data.features import ENTITY, EVENT_TIME

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from mlops.core.lake import Lake


class FrameHash:
    """A content hash of a frame fed in consecutive parts (order-sensitive): the same for the
    whole frame at once and for any split of it, since pandas hashes row by row. The row hashes
    can be computed where the part is built (a mapped task) and fed here later (``update_rows``)."""

    def __init__(self) -> None:
        import hashlib

        self._digest = hashlib.sha256()
        self._columns: list[str] | None = None
        self.rows = 0

    def update(self, frame: pd.DataFrame) -> None:
        self.update_rows(row_hashes(frame), [str(c) for c in frame.columns])

    def update_rows(self, hashes: np.ndarray, columns: list[str]) -> None:
        self._digest.update(hashes.tobytes())
        self._columns = self._columns or columns
        self.rows += len(hashes)

    def hexdigest(self) -> str:
        digest = self._digest.copy()
        digest.update(",".join(self._columns or []).encode())
        return digest.hexdigest()


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row of ``frame`` (pandas' row hash, index excluded)."""
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


ROW_HASH = "__row_hash"


@dataclass(frozen=True)
class Rows:
    """Some of a day's feature or label rows, as an Arrow table, with their row hashes (for the
    day's content hash): built where the rows are built, so that a commit only writes them."""

    table: pa.Table
    hashes: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Rows:
        import pyarrow as pa

        return cls(pa.Table.from_pandas(frame, preserve_index=False), row_hashes(frame))

    def staged(self) -> pa.Table:
        """The rows and their hashes as one table (``ROW_HASH`` last), to stage as Arrow IPC."""
        import pyarrow as pa

        return self.table.append_column(ROW_HASH, pa.array(self.hashes, pa.uint64()))

    def digest(self) -> str:
        """What the rows are (values, column names and types), as a hex string: a store that took
        them in earlier (``stage_part``) finds them again by it."""
        import hashlib

        digest = hashlib.sha256(self.hashes.tobytes())
        digest.update(str(self.table.schema.remove_metadata()).encode())
        return digest.hexdigest()

    @classmethod
    def from_staged(cls, table: pa.Table) -> Rows:
        index = table.schema.get_field_index(ROW_HASH)
        if index < 0:
            raise ValueError(f"staged rows lack their {ROW_HASH!r} column: not written by Rows.staged")
        return cls(table.remove_column(index), table.column(index).to_numpy())


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (order-sensitive), used as the partition's data version."""
    hasher = FrameHash()
    hasher.update(frame)
    return hasher.hexdigest()


def _partition_manifest(
    use_case: str,
    interval: dt.date,
    features: FrameHash,
    labels: FrameHash | None,
    feature_version: str | None,
) -> FeaturePartition:
    manifest = FeaturePartition(
        use_case=use_case,
        interval=interval.isoformat(),
        rows=features.rows,
        label_rows=0 if labels is None else labels.rows,
        content_hash=features.hexdigest(),
    )
    if feature_version is not None:
        manifest["feature_version"] = feature_version
    return manifest


def label_manifest(use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
    return LabelPartition(
        use_case=use_case, interval=interval.isoformat(), rows=len(labels), content_hash=frame_hash(labels)
    )


Parts = Iterable[tuple[Rows, "Rows | None"]]
"""A day's rows in consecutive parts: features, and labels when the batch carries them."""


class FeatureStore(Protocol):
    def write_partition(
        self,
        use_case: str,
        interval: dt.date,
        features: pd.DataFrame,
        labels: pd.DataFrame | None,
        feature_version: str | None = None,
    ) -> FeaturePartition: ...

    def write_partition_parts(
        self,
        use_case: str,
        interval: dt.date,
        parts: Parts,
        feature_version: str | None = None,
        *,
        with_labels: bool,
    ) -> FeaturePartition: ...

    def stage_part(self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None) -> None:
        """Take in one checked partition of a day ahead of its commit (in the mapped check, so the
        workers share the writing), or do nothing if the commit writes everything itself."""
        ...

    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition: ...

    def read_features(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame: ...

    def read_labels(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame: ...

    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]: ...

    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]: ...


ROW_GROUP_ROWS = 100_000


def parquet_writer(frame: pd.DataFrame) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        frame.to_parquet(fh, index=False, row_group_size=ROW_GROUP_ROWS)

    return write


class _PartWriter:
    """Appends parts to one Parquet file, each cast to the first one's schema (text stays text
    when a later part's text column happens to be all null), and hashes them as they pass."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.hash = FrameHash()
        self._writer: Any = None
        self._schema: Any = None

    def write(self, rows: Rows) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.hash.update_rows(rows.hashes, rows.table.column_names)
        if self._schema is None:
            self._schema = _text_for_null(rows.table.schema)
            # Dictionary encoding for text only: on float columns of distinct values it costs
            # time (a third of the write) and makes the file larger.
            text = [f.name for f in self._schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            self._writer = pq.ParquetWriter(self.fh, self._schema, use_dictionary=text)
        self._writer.write_table(rows.table.cast(self._schema), row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _text_for_null(schema: pa.Schema) -> pa.Schema:
    """A column that is all null in a part is text: it has no type of its own to keep."""
    import pyarrow as pa

    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _drain(parts: Parts, features: _PartWriter, labels: _PartWriter | None) -> None:
    try:
        for part_features, part_labels in parts:
            features.write(part_features)
            if labels is not None:
                if part_labels is None:
                    raise ValueError("a part without labels in a day written with labels")
                labels.write(part_labels)
    finally:
        features.close()
        if labels is not None:
            labels.close()


class ParquetFeatureStore:
    """Parquet partitions in the lake, with a manifest per partition (rows and content hash)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def write_partition(
        self, use_case: str, interval: dt.date, features: pd.DataFrame, labels: pd.DataFrame | None, feature_version: str | None = None
    ) -> FeaturePartition:
        """Features of a day, and its labels when they come in the batch (``None``: a label feed's)."""
        part = (Rows.of(features), None if labels is None else Rows.of(labels))
        return self.write_partition_parts(use_case, interval, [part], feature_version, with_labels=labels is not None)

    def write_partition_parts(
        self,
        use_case: str,
        interval: dt.date,
        parts: Parts,
        feature_version: str | None = None,
        *,
        with_labels: bool,
    ) -> FeaturePartition:
        """A day's features (and labels) from consecutive parts, streamed into one file each; one part in memory at a time."""
        writers: dict[str, _PartWriter] = {}

        def write_features(features_fh: IO[bytes]) -> None:
            writers["features"] = _PartWriter(features_fh)
            if not with_labels:
                _drain(parts, writers["features"], None)
                return

            def write_labels(labels_fh: IO[bytes]) -> None:
                writers["labels"] = _PartWriter(labels_fh)
                _drain(parts, writers["features"], writers["labels"])

            self.lake.write_with(layout.store_partition("labels", use_case, interval), write_labels)

        self.lake.write_with(layout.store_partition("features", use_case, interval), write_features)
        labels = writers.get("labels")
        manifest = _partition_manifest(
            use_case, interval, writers["features"].hash, labels.hash if labels else None, feature_version
        )
        # The manifests go last: a partition is read only once its files are in place. Features
        # first: a day whose labels are not committed yet reads like labels still to come, while
        # labels without their features would be a training row with nothing to learn from.
        faults.point("materialize")
        self.lake.write_json(layout.feature_manifest(use_case, interval), manifest)
        if labels is not None:
            self.lake.write_json(
                layout.label_manifest(use_case, interval),
                LabelPartition(
                    use_case=use_case,
                    interval=interval.isoformat(),
                    rows=labels.hash.rows,
                    content_hash=labels.hash.hexdigest(),
                ),
            )
        return manifest

    def stage_part(self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None) -> None:
        """Nothing: the commit writes the day's file from the checks' staging in the lake."""

    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
        """The labels delivered on a day (a label feed), replacing that day's delivery."""
        manifest = label_manifest(use_case, interval, labels)
        self.lake.write_with(layout.store_partition("labels", use_case, interval), parquet_writer(labels))
        self.lake.write_json(layout.label_manifest(use_case, interval), manifest)
        return manifest

    def _read(self, kind: layout.FeatureKind, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        import pandas as pd

        frames = []
        for day in _days(start, end):
            # Only committed partitions: their manifest is written after the data is in place,
            # so a file left by a writer that died before committing is never read.
            if self.lake.exists(self._manifest(kind, use_case, day)):
                with self.lake.open_read(layout.store_partition(kind, use_case, day)) as fh:
                    frames.append(pd.read_parquet(fh))
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _manifest(kind: layout.FeatureKind, use_case: str, day: dt.date) -> str:
        return layout.feature_manifest(use_case, day) if kind == "features" else layout.label_manifest(use_case, day)

    def read_features(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self._read("features", use_case, start, end)

    def read_labels(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self._read("labels", use_case, start, end)

    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The partition in chunks of at most ``chunk_rows`` rows (memory stays flat)."""
        import pyarrow.parquet as pq

        rel = layout.store_partition("features", use_case, interval)
        if not self.lake.exists(layout.feature_manifest(use_case, interval)):
            raise FileNotFoundError(
                f"use case {use_case!r}: no committed feature partition for {interval} at {self.lake.uri(rel)} "
                "(no manifest: run the data DAG for that day)"
            )
        with self.lake.open_read(rel) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()

    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]:
        out = {}
        for name in self.lake.list(layout.feature_manifests_dir(use_case)):
            if name.endswith(".json"):
                day = dt.date.fromisoformat(name.removesuffix(".json"))
                out[day] = self.lake.read_json(layout.feature_manifest(use_case, day))
        return out


PART = "__part"
"""In the PostgreSQL store, the partition of its day a row was checked in (the day's sub-partition key)."""

STAGES = "feature_stages"
"""The PostgreSQL store's ledger of partitions taken in ahead of their commit (``stage_part``)."""

DDL_LOCK = "mlops.feature_store"
"""The PostgreSQL advisory lock (by ``hashtext``) held while the store creates, moves or widens its tables."""

STAGE_TTL = "1 day"
"""A staged partition no commit took within this long is abandoned (its day was quarantined or
re-delivered); a commit drops it."""


class PostgresFeatureStore:
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
            **{k: v for k, v in (conn.extra_dejson or {}).items() if k in {"sslmode", "connect_timeout", "options"}},
        )

    @staticmethod
    def _ident(use_case: str, kind: str, day: dt.date | None = None) -> Any:
        """A table (the kind's, or one day of it), as a quoted identifier: names never reach SQL as
        text. A day's table starts ``day_``, a staged one ``stage_``: no use case's name can clash."""
        from psycopg2 import sql

        return sql.Identifier(f"{kind}_{use_case}" if day is None else f"day_{kind}_{use_case}_{day:%Y%m%d}")

    @staticmethod
    def _sql_type(kind: pa.DataType) -> str:
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

    def _ensure(self, cur: Any, use_case: str, kind: str, table: pa.Table) -> None:
        """The kind's partitioned table and the store's ledgers, created if missing; a table of an
        earlier release (one table, not partitioned) is moved into day partitions first.

        Only creating and moving take the store's lock (mapped checks may start on an empty store
        together); once the table exists, stagings and commits do not wait for each other here.
        """
        from psycopg2 import sql

        parent = self._ident(use_case, kind)
        if self._relkind(cur, parent) == "p":
            self._add_new_columns(cur, parent, table)
            return
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS feature_partitions (use_case TEXT NOT NULL, interval DATE NOT NULL,"
            " manifest JSONB NOT NULL, written_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
            " PRIMARY KEY (use_case, interval))"
        )
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, use_case TEXT NOT NULL, kind TEXT NOT NULL,"
                " interval DATE NOT NULL, part INT NOT NULL, digest TEXT NOT NULL,"
                " created_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (use_case, kind, interval, part, digest))"
            ).format(sql.Identifier(STAGES))
        )
        found = self._relkind(cur, parent)
        if found == "p":  # created while this waited for the lock
            self._add_new_columns(cur, parent, table)
            return
        if found is None:
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(self._sql_type(f.type))) for f in table.schema
            )
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (interval DATE NOT NULL, {} INT NOT NULL, {}, PRIMARY KEY (interval, {}, {}, {}))"
                    " PARTITION BY LIST (interval)"
                ).format(parent, sql.Identifier(PART), cols, sql.Identifier(PART), sql.Identifier(ENTITY), sql.Identifier(EVENT_TIME))
            )
            return
        self._partition_legacy(cur, use_case, kind)

    def _add_new_columns(self, cur: Any, parent: Any, table: pa.Table) -> None:
        """Columns of ``table`` the kind's table lacks (a feature added), added to it and so to
        every day, where they read as null, as a day's Parquet file without them does. A column
        the rows lack (a feature dropped) stays, null in the days written from now on."""
        from psycopg2 import sql

        cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (parent.as_string(cur),),
        )
        have = {row[0] for row in cur.fetchall()}
        new = [f for f in table.schema if f.name not in have]
        if not new:
            return
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
        for field in new:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    parent, sql.Identifier(field.name), sql.SQL(self._sql_type(field.type))
                )
            )

    @staticmethod
    def _relkind(cur: Any, table: Any) -> str | None:
        """``p`` for a partitioned table, ``r`` for a plain one, None if there is none (any relation)."""
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (table.as_string(cur),))
        found = cur.fetchone()
        return None if found is None else str(found[0])

    def _partition_legacy(self, cur: Any, use_case: str, kind: str) -> None:
        """Move a table of an earlier release (all days in one table) into day partitions, in the
        caller's transaction."""
        from psycopg2 import sql

        parent, legacy, moving = (
            self._ident(use_case, kind),
            sql.Identifier(f"legacy_{kind}_{use_case}"),
            sql.Identifier(f"partitioned_{kind}_{use_case}"),
        )
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(parent, legacy))
        cur.execute(sql.SQL("CREATE TABLE {} (LIKE {}) PARTITION BY LIST (interval)").format(moving, legacy))
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} INT NOT NULL DEFAULT 0").format(moving, sql.Identifier(PART)))
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (interval, {}, {}, {})").format(
                moving, sql.Identifier(PART), sql.Identifier(ENTITY), sql.Identifier(EVENT_TIME)
            )
        )
        cur.execute(sql.SQL("SELECT DISTINCT interval FROM {}").format(legacy))
        for (day,) in cur.fetchall():
            stage = self._new_stage(cur, moving, day, 0)
            cur.execute(sql.SQL("INSERT INTO {} SELECT *, 0 FROM {} WHERE interval = %s").format(stage, legacy), (day,))
            self._index_stage(cur, stage)
            cur.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN (%s) PARTITION BY LIST ({})").format(
                    self._ident(use_case, kind, day), moving, sql.Identifier(PART)
                ),
                (day,),
            )
            cur.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN (0)").format(self._ident(use_case, kind, day), stage)
            )
        cur.execute(sql.SQL("DROP TABLE {}").format(legacy))
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(moving, parent))

    @staticmethod
    def _new_stage(cur: Any, parent: Any, interval: dt.date, index: int) -> Any:
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

    @staticmethod
    def _index_stage(cur: Any, stage: Any) -> None:
        """The primary key of the store's tables, built once the rows are in (a sort, faster than
        keeping the index up to date row by row)."""
        from psycopg2 import sql

        cur.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (interval, {}, {}, {})").format(
                stage, sql.Identifier(PART), sql.Identifier(ENTITY), sql.Identifier(EVENT_TIME)
            )
        )

    def _stage(self, cur: Any, use_case: str, kind: str, interval: dt.date, index: int, rows: pa.Table) -> Any:
        """A table holding ``rows`` as partition ``index`` of the day, ready to attach (in the
        caller's transaction, after ``_ensure``).

        The rows go as CSV written by Arrow (a tenth of the time pandas takes): text quoted,
        a null as an unquoted empty field, which is PostgreSQL's CSV null.
        """
        import pyarrow.csv as pacsv
        from psycopg2 import sql

        stage = self._new_stage(cur, self._ident(use_case, kind), interval, index)
        buf = io.BytesIO()
        pacsv.write_csv(
            rows.cast(_text_for_null(rows.schema)), buf, pacsv.WriteOptions(include_header=False, quoting_style="needed")
        )
        buf.seek(0)
        cols = sql.SQL(", ").join(sql.Identifier(name) for name in rows.column_names)
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(stage, cols)
        cur.copy_expert(copy.as_string(cur), buf)
        self._index_stage(cur, stage)
        return stage

    def stage_part(self, use_case: str, interval: dt.date, index: int, features: Rows, labels: Rows | None) -> None:
        """COPY one checked partition into tables of its own, indexed, for the commit to attach;
        recorded in the ledger by what the rows are, so running it twice stages them once."""
        from psycopg2 import sql

        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                for kind, rows in (("features", features), ("labels", labels)):
                    if rows is None:
                        continue
                    self._ensure(cur, use_case, kind, rows.table)
                    digest = rows.digest()
                    cur.execute(
                        sql.SQL("SELECT 1 FROM {} WHERE use_case = %s AND kind = %s AND interval = %s AND part = %s AND digest = %s").format(
                            sql.Identifier(STAGES)
                        ),
                        (use_case, kind, interval, index, digest),
                    )
                    if cur.fetchone() is not None:
                        continue
                    stage = self._stage(cur, use_case, kind, interval, index, rows.table)
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO {} (name, use_case, kind, interval, part, digest) VALUES (%s, %s, %s, %s, %s, %s)"
                            " ON CONFLICT DO NOTHING RETURNING name"
                        ).format(sql.Identifier(STAGES)),
                        (stage.strings[0], use_case, kind, interval, index, digest),
                    )
                    if cur.fetchone() is None:  # the same rows staged meanwhile by a twin of this task
                        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
        finally:
            conn.close()

    def _take_stage(self, cur: Any, use_case: str, kind: str, interval: dt.date, index: int, rows: Rows) -> Any:
        """The table holding these rows as partition ``index``: the one a check staged, taken off
        the ledger (its row locked until the commit), or one COPYed now."""
        from psycopg2 import sql

        self._ensure(cur, use_case, kind, rows.table)
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE name = (SELECT name FROM {} WHERE use_case = %s AND kind = %s AND interval = %s"
                " AND part = %s AND digest = %s FOR UPDATE) RETURNING name"
            ).format(sql.Identifier(STAGES), sql.Identifier(STAGES)),
            (use_case, kind, interval, index, rows.digest()),
        )
        found = cur.fetchone()
        if found is not None and self._relkind(cur, sql.Identifier(found[0])) is not None:
            return sql.Identifier(found[0])
        return self._stage(cur, use_case, kind, interval, index, rows.table)

    def _swap_day(self, cur: Any, use_case: str, kind: str, interval: dt.date, stages: list[Any]) -> None:
        """Make ``stages`` the day's partitions, dropping what the day held (in the caller's transaction)."""
        from psycopg2 import sql

        day = self._ident(use_case, kind, interval)
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(day))
        cur.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN (%s) PARTITION BY LIST ({})").format(
                day, self._ident(use_case, kind), sql.Identifier(PART)
            ),
            (interval,),
        )
        for index, stage in enumerate(stages):
            cur.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN (%s)").format(day, stage), (index,))
        # What no commit took: this day's other stagings (an earlier delivery), and any left too long.
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE use_case = %s AND ((kind = %s AND interval = %s) OR created_at < now() - %s::interval)"
                " RETURNING name"
            ).format(sql.Identifier(STAGES)),
            (use_case, kind, interval, STAGE_TTL),
        )
        for (name,) in cur.fetchall():
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))

    def write_labels(self, use_case: str, interval: dt.date, labels: pd.DataFrame) -> LabelPartition:
        rows = Rows.of(labels)
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                self._swap_day(cur, use_case, "labels", interval, [self._take_stage(cur, use_case, "labels", interval, 0, rows)])
        finally:
            conn.close()
        return label_manifest(use_case, interval, labels)

    def write_partition(
        self, use_case: str, interval: dt.date, features: pd.DataFrame, labels: pd.DataFrame | None, feature_version: str | None = None
    ) -> FeaturePartition:
        part = (Rows.of(features), None if labels is None else Rows.of(labels))
        return self.write_partition_parts(use_case, interval, [part], feature_version, with_labels=labels is not None)

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
        feature_hash, label_hash = FrameHash(), FrameHash() if with_labels else None
        stages: dict[str, list[Any]] = {"features": [], "labels": []}
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                for i, (features, labels) in enumerate(parts):
                    stages["features"].append(self._take_stage(cur, use_case, "features", interval, i, features))
                    feature_hash.update_rows(features.hashes, features.table.column_names)
                    if label_hash is not None:
                        if labels is None:
                            raise ValueError("a part without labels in a day written with labels")
                        stages["labels"].append(self._take_stage(cur, use_case, "labels", interval, i, labels))
                        label_hash.update_rows(labels.hashes, labels.table.column_names)
                for kind, taken in stages.items():
                    if taken:
                        self._swap_day(cur, use_case, kind, interval, taken)
                manifest = _partition_manifest(use_case, interval, feature_hash, label_hash, feature_version)
                cur.execute(
                    "INSERT INTO feature_partitions (use_case, interval, manifest) VALUES (%s, %s, %s)"
                    " ON CONFLICT (use_case, interval) DO UPDATE SET manifest = EXCLUDED.manifest, written_at = now()",
                    (use_case, interval, json.dumps(manifest)),
                )
                faults.point("materialize")  # before COMMIT: PostgreSQL rolls the partition back
        finally:
            conn.close()
        return manifest

    def _read(self, kind: str, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        import pandas as pd
        from psycopg2 import sql

        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (f"{kind}_{use_case}",))
                if cur.fetchone()[0] is None:
                    return pd.DataFrame()
                cur.execute(
                    sql.SQL("SELECT * FROM {} WHERE interval BETWEEN %s AND %s ORDER BY interval, {}, {}").format(
                        self._ident(use_case, kind), sql.Identifier(EVENT_TIME), sql.Identifier(ENTITY)
                    ),
                    (start, end),
                )
                names = [d[0] for d in cur.description]
                frame = pd.DataFrame(cur.fetchall(), columns=names).drop(columns=["interval", PART])
        finally:
            conn.close()
        for col in frame.columns:
            # Keys keep the type PostgreSQL gives them (BIGINT or TEXT, as written); text values
            # of other columns are numbers where all of them parse.
            if frame[col].dtype == object and col not in (ENTITY, EVENT_TIME):
                frame[col] = _numeric_if_possible(frame[col])
        for col in (EVENT_TIME, "label_available_at"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
        return frame

    def read_features(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self._read("features", use_case, start, end)

    def read_labels(self, use_case: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self._read("labels", use_case, start, end)

    def iter_features(self, use_case: str, interval: dt.date, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pandas as pd
        from psycopg2 import sql

        conn = self._connect()
        try:
            with conn.cursor(name=f"scan_{use_case}") as cur:  # server-side cursor: rows stream in chunks
                cur.itersize = chunk_rows
                cur.execute(
                    sql.SQL("SELECT * FROM {} WHERE interval = %s ORDER BY {}, {}").format(
                        self._ident(use_case, "features"), sql.Identifier(EVENT_TIME), sql.Identifier(ENTITY)
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
                    frame = pd.DataFrame(rows, columns=names).drop(columns=["interval", PART])
                    frame[EVENT_TIME] = pd.to_datetime(frame[EVENT_TIME]).astype("datetime64[us]")
                    yield frame
        finally:
            conn.close()

    def partitions(self, use_case: str) -> dict[dt.date, FeaturePartition]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('feature_partitions')")
                if cur.fetchone()[0] is None:
                    return {}
                cur.execute("SELECT interval, manifest FROM feature_partitions WHERE use_case = %s", (use_case,))
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


def get_feature_store() -> FeatureStore:
    from mlops.core.lake import get_lake
    from mlops.core.settings import load_settings

    settings = load_settings()
    if settings.feature_store == "postgres":
        return PostgresFeatureStore(settings.feature_store_conn_id)
    return ParquetFeatureStore(get_lake())
