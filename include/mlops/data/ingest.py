"""Extract and archive: read a use case's upstream batch for one interval and keep it unmodified.

The archive is ``raw/<use_case>/<interval>/`` holding ``batch.<ext>`` (the bytes as received; a
SQL extract as Parquet) and ``_manifest.json`` (content hash, size, source). Re-running an
interval replaces the partition atomically; if the upstream sent different bytes, the earlier
batch is kept under ``_superseded/<sha256>.<ext>`` first, so nothing is ever lost.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING

from mlops.core import layout
from mlops.core.lake import sha256
from mlops.core.results import RawManifest

if TYPE_CHECKING:
    from mlops.core.config import Feed, UseCase
    from mlops.core.lake import Lake


class BatchMissing(FileNotFoundError):
    """The upstream batch for the interval is not there (yet)."""


def as_feed(feed: UseCase | Feed) -> Feed:
    """A use case stands for its batch feed."""
    from mlops.core.config import UseCase

    return feed.feed("batch") if isinstance(feed, UseCase) else feed


def source_uri(feed: UseCase | Feed, interval: dt.date, landing_uri: str) -> str:
    source = as_feed(feed).source
    assert source.uri is not None
    return source.uri.format(landing=landing_uri.rstrip("/"), interval=interval.isoformat())


def batch_available(feed: UseCase | Feed, interval: dt.date, landing_uri: str) -> bool:
    """Whether the upstream file exists (for the optional sensor). SQL sources are always 'there'."""
    if as_feed(feed).source.kind == "sql":
        return True
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(source_uri(feed, interval, landing_uri)).exists()


def fetch_batch(feed: UseCase | Feed, interval: dt.date, landing_uri: str) -> tuple[bytes, str, str]:
    """The delivered bytes of a feed for one day, their format and where they came from."""
    feed = as_feed(feed)
    if feed.source.kind == "sql":
        return _fetch_sql(feed, interval)
    from airflow.sdk import ObjectStoragePath

    uri = source_uri(feed, interval, landing_uri)
    path = ObjectStoragePath(uri)
    if not path.exists():
        what = "batch" if feed.kind == "batch" else "label file"
        raise BatchMissing(
            f"use case {feed.use_case!r}: no upstream {what} for {interval} at {uri}; "
            "the upstream system has not delivered it (re-run once it lands, or set source.on_missing: wait)"
        )
    with path.open("rb") as fh:
        return fh.read(), feed.source.format, uri


def _fetch_sql(feed: Feed, interval: dt.date) -> tuple[bytes, str, str]:
    from airflow.sdk import BaseHook

    src = feed.source
    assert src.conn_id and src.query
    hook = BaseHook.get_connection(src.conn_id).get_hook()
    params = {
        "interval_start": dt.datetime.combine(interval, dt.time()),
        "interval_end": dt.datetime.combine(interval + dt.timedelta(days=1), dt.time()),
    }
    frame = hook.get_df(src.query, parameters=params, df_type="pandas")
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue(), "parquet", f"sql://{src.conn_id}"


def archive_batch(
    lake: Lake, use_case: str, interval: dt.date, data: bytes, fmt: str, source: str, received_at: str
) -> RawManifest:
    """Store the batch unmodified with its content hash; return the manifest."""
    digest = sha256(data)
    manifest_rel = layout.raw_manifest(use_case, interval)
    if lake.exists(manifest_rel):
        previous: RawManifest = lake.read_json(manifest_rel)
        if previous["sha256"] == digest:
            return previous  # same bytes already archived: nothing to do
        old_rel = layout.raw_batch(use_case, interval, previous["format"])
        if lake.exists(old_rel):
            lake.copy(old_rel, layout.raw_superseded(use_case, interval, previous["sha256"], previous["format"]))
        if previous["format"] != fmt:
            lake.delete(old_rel)
    batch_rel = layout.raw_batch(use_case, interval, fmt)
    lake.write_bytes(batch_rel, data)
    manifest = RawManifest(
        use_case=use_case,
        interval=interval.isoformat(),
        sha256=digest,
        bytes=len(data),
        format=fmt,
        source=source,
        received_at=received_at,
        uri=lake.uri(batch_rel),
    )
    lake.write_json(manifest_rel, manifest)
    return manifest


def read_archived(lake: Lake, use_case: str, interval: dt.date) -> tuple[bytes, RawManifest]:
    manifest_rel = layout.raw_manifest(use_case, interval)
    if not lake.exists(manifest_rel):
        raise BatchMissing(f"use case {use_case!r}: no archived batch for {interval} under {lake.uri(layout.raw_dir(use_case, interval))}")
    manifest: RawManifest = lake.read_json(manifest_rel)
    batch_rel = layout.raw_batch(use_case, interval, manifest["format"])
    data = lake.read_bytes(batch_rel)
    if sha256(data) != manifest["sha256"]:
        raise ValueError(f"archived batch {lake.uri(batch_rel)} does not match its manifest hash")
    return data, manifest
