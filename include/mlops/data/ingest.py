"""Extract and archive: read a use case's upstream batch for one interval and keep it unmodified.

The archive is content-addressed: ``raw/<stream>/<interval>/<sha256>.<ext>`` holds each delivery's
bytes as received (a SQL extract as Parquet), written once under its own hash, and
``_manifest.json`` (written last, the only file that changes) names the current delivery and lists
the earlier ones. A re-delivery adds an object and moves the pointer; a retry after a crash finds
its object already there; nothing is ever overwritten or lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from mlops.core import faults, layout
from mlops.core.results import RawManifest

if TYPE_CHECKING:
    from mlops.core.config import Feed, UseCase
    from mlops.core.lake import Lake


class BatchMissing(FileNotFoundError):
    """The upstream batch for the interval is not there (yet)."""


class BatchChanged(RuntimeError):
    """The upstream file changed while it was being archived (the upstream was still writing it)."""


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


Opener = Callable[[], IO[bytes]]
CHUNK_BYTES = 8 << 20  # what the archive holds in memory at a time


def open_batch(feed: UseCase | Feed, interval: dt.date, landing_uri: str) -> tuple[Opener, str, str]:
    """How to open a feed's delivery for one day (a file is streamed, never held whole), its format and origin."""
    feed = as_feed(feed)
    if feed.source.kind == "sql":
        data, fmt, origin = _fetch_sql(feed, interval)
        return (lambda: io.BytesIO(data)), fmt, origin
    from airflow.sdk import ObjectStoragePath

    uri = source_uri(feed, interval, landing_uri)
    path = ObjectStoragePath(uri)
    if not path.exists():
        what = "batch" if feed.kind == "batch" else "label file"
        raise BatchMissing(
            f"use case {feed.use_case!r}: no upstream {what} for {interval} at {uri}; "
            "the upstream system has not delivered it (re-run once it lands, or set source.on_missing: wait)"
        )
    return (lambda: path.open("rb")), feed.source.format, uri


def landed_at(feed: UseCase | Feed, interval: dt.date, landing_uri: str) -> str | None:
    """When the upstream file landed (its modification time, UTC ISO), if the store says; else None."""
    feed = as_feed(feed)
    if feed.source.kind == "sql":
        return None
    from airflow.sdk import ObjectStoragePath

    try:
        info = ObjectStoragePath(source_uri(feed, interval, landing_uri)).stat()
    except (OSError, ValueError):
        return None
    modified = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(modified, dt.datetime):
        return modified.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(modified, int | float):
        return dt.datetime.fromtimestamp(modified, dt.UTC).isoformat(timespec="seconds")
    return None


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


def _digest(opener: Opener) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with opener() as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def archive_stream(
    lake: Lake,
    use_case: str,
    interval: dt.date,
    opener: Opener,
    fmt: str,
    source: str,
    received_at: str,
    landed: str | None = None,
) -> RawManifest:
    """Store a delivery unmodified under its content hash, streaming it (memory stays flat at any size).

    The source is read twice: once for the hash that names the object, once to copy it. The copy
    is hashed as it goes, and if the upstream changed the file in between, the copy is discarded
    and the task fails: the archive never holds bytes under a hash that is not theirs.
    """
    digest, size = _digest(opener)
    manifest_rel = layout.raw_manifest(use_case, interval)
    previous: RawManifest | None = lake.read_json(manifest_rel) if lake.exists(manifest_rel) else None
    if previous is not None and previous["sha256"] == digest:
        return previous  # same bytes already archived: nothing to do
    # Content-addressed: the object's name is its hash, so it is written once and a retry or a
    # re-delivery can never overwrite an earlier delivery. An existing object is complete
    # (writes are moved into place), so it is not written again.
    batch_rel = layout.raw_object(use_case, interval, digest, fmt)
    if not lake.exists(batch_rel):

        def copy(out: IO[bytes]) -> None:
            check = hashlib.sha256()
            with opener() as fh:
                while chunk := fh.read(CHUNK_BYTES):
                    check.update(chunk)
                    out.write(chunk)
            if check.hexdigest() != digest:
                raise BatchChanged(
                    f"use case {use_case!r}: the upstream file for {interval} ({source}) changed while it was being "
                    "archived; nothing was archived. Re-run once the upstream has finished writing it"
                )

        lake.write_with(batch_rel, copy)
    faults.point("archive")
    superseded = []
    if previous is not None:
        superseded = [
            *previous.get("superseded", []),
            {k: previous[k] for k in ("sha256", "format", "bytes", "received_at", "uri")},
        ]
    manifest = RawManifest(
        use_case=use_case,
        interval=interval.isoformat(),
        sha256=digest,
        bytes=size,
        format=fmt,
        source=source,
        received_at=received_at,
        uri=lake.uri(batch_rel),
        superseded=superseded,
        landed_at=landed,
    )
    lake.write_json(manifest_rel, manifest)  # the only mutable pointer, written last
    return manifest


def read_manifest(lake: Lake, use_case: str, interval: dt.date) -> RawManifest:
    """The current delivery of a day (its manifest), or BatchMissing."""
    manifest_rel = layout.raw_manifest(use_case, interval)
    if not lake.exists(manifest_rel):
        raise BatchMissing(
            f"use case {use_case!r}: no archived batch for {interval} under {lake.uri(layout.raw_dir(use_case, interval))}"
        )
    manifest: RawManifest = lake.read_json(manifest_rel)
    return manifest


def verify_archived(lake: Lake, manifest: RawManifest) -> None:
    """Check, streaming, that the archived object still has the hash its manifest names."""
    rel = layout.raw_object(
        manifest["use_case"], manifest["interval"], manifest["sha256"], manifest["format"]
    )
    digest, _ = _digest(lambda: lake.open_read(rel))
    if digest != manifest["sha256"]:
        raise ValueError(f"archived batch {lake.uri(rel)} does not match its manifest hash")
