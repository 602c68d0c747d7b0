"""The data lake: raw, quarantine, features, labels, predictions, reports and state.

One code path for a local folder (``file://``) and S3 (``s3://<conn_id>@<bucket>/<prefix>``),
through Airflow's ``ObjectStoragePath``. Every write is atomic: the bytes go to a hidden
temporary object beside the target, which is then moved into place, so a reader never sees a
half-written file and a retried task simply overwrites.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any

from airflow.sdk import ObjectStoragePath


class Lake:
    """A rooted view of the lake; all paths are relative to the root ("raw/churn/2026-01-01/...")."""

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")
        self.root = ObjectStoragePath(self.root_uri)

    def __repr__(self) -> str:
        return f"Lake({self.root_uri!r})"

    # Paths -------------------------------------------------------------------------------
    def path(self, rel: str) -> ObjectStoragePath:
        return self.root / rel.strip("/")

    def uri(self, rel: str) -> str:
        return f"{self.root_uri}/{rel.strip('/')}"

    @property
    def _fs(self) -> Any:
        return self.root.fs

    def _key(self, rel: str) -> str:
        return self.path(rel).path

    # Reads -------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return bool(self._fs.exists(self._key(rel)))

    def read_bytes(self, rel: str) -> bytes:
        # One GET: an object replaced while it is read is read whole, old or new, never refused
        # half-way (an open file on S3 pins the first ETag and fails when the object changes).
        return bytes(self._fs.cat_file(self._key(rel)))

    def open_read(self, rel: str) -> IO[bytes]:
        return self._fs.open(self._key(rel), "rb")

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def list(self, rel: str) -> list[str]:
        """Names directly under ``rel`` (files and folders), sorted; [] when it does not exist."""
        key = self._key(rel)
        if not self._fs.exists(key):
            return []
        names = []
        for entry in self._fs.ls(key, detail=False):
            name = str(entry).rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("."):
                names.append(name)
        return sorted(names)

    def list_files(self, rel: str) -> dict[str, str]:
        """Every file under ``rel`` at any depth: ``{path relative to the root: change token}``.

        One recursive listing (on S3 one ListObjectsV2 per 1,000 keys). The token changes when the
        file is rewritten (size with the ETag on S3, size, mtime and inode locally), so a reader
        can keep what it parsed until then. Hidden files (a write in progress) are left out;
        {} when ``rel`` does not exist.
        """
        root_key = self._key("")
        found = self._fs.find(self._key(rel), detail=True)
        out = {}
        for key, info in found.items():
            path = str(key)[len(root_key) :].lstrip("/")
            if any(part.startswith(".") for part in path.split("/")):
                continue
            token = (info.get(k) for k in ("size", "ETag", "mtime", "ino"))
            out[path] = ":".join(str(v) for v in token if v is not None)
        return out

    def children(self, rel: str, suffix: str = "") -> builtins.list[str]:
        """Paths (relative to the root) of the entries directly under ``rel`` ending in ``suffix``."""
        base = rel.strip("/")
        return [f"{base}/{name}" for name in self.list(base) if name.endswith(suffix)]

    # Writes ------------------------------------------------------------------------------
    def write_with(self, rel: str, writer: Callable[[IO[bytes]], object]) -> str:
        """Call ``writer`` with a binary file handle, then move the result into place atomically."""
        key = self._key(rel)
        parent, _, name = key.rpartition("/")
        tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex}"
        self._fs.makedirs(parent, exist_ok=True)
        try:
            with self._fs.open(tmp, "wb") as fh:
                writer(fh)
            self._fs.mv(tmp, key)
        finally:
            if self._fs.exists(tmp):
                self._fs.rm(tmp)
        return self.uri(rel)

    def write_bytes(self, rel: str, data: bytes) -> str:
        return self.write_with(rel, lambda fh: fh.write(data))

    def write_json(self, rel: str, obj: Any) -> str:
        return self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def create(self, rel: str, data: bytes) -> bool:
        """Write ``rel`` only if nothing is there yet; True if this call wrote it.

        The lake's one compare-and-set, used for claims: of two writers racing for the same path
        exactly one wins, and the loser learns it. A local file is written beside the target and
        hard-linked into place (the link fails if the target exists); on S3 it is a conditional
        PUT (``If-None-Match: *``), which S3 and moto refuse with 412 when the key exists.
        """
        key = self._key(rel)
        parent, _, name = key.rpartition("/")
        self._fs.makedirs(parent, exist_ok=True)
        if self.is_local:
            tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex}"
            try:
                with builtins.open(tmp, "wb") as fh:
                    fh.write(data)
                os.link(tmp, key)
            except FileExistsError:
                return False
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return True
        try:
            self._fs.pipe_file(key, data, mode="create")
        except FileExistsError:
            return False
        return True

    @contextlib.contextmanager
    def lock(self, rel: str, *, lease: float = 60.0, wait: float = 300.0) -> Iterator[None]:
        """Hold ``rel`` as an exclusive lock for the ``with`` block; ``TimeoutError`` after ``wait``
        seconds of another holder.

        Locally an ``flock`` on the file ``rel``: exclusive between processes and threads (each
        call opens the file anew), and released by the kernel when its holder dies, however it dies.

        On S3 a lock object created exclusively (``create``: a conditional PUT) with a lease. The
        guarantee is weaker, and bounded by the lease: a holder that dies keeps the lock until its
        lease (``lease`` seconds from when it was taken, by the holder's clock) runs out, and a
        holder still working past its lease may be joined by the next one. So keep what runs
        under it short (a manifest's read and write), far below ``lease``. A lease is broken only
        after reading it expired twice, the same lease both times: two waiters cannot both break
        it unless one deletes between the other's read and delete, which the lease's margin makes
        unlikely, not impossible (S3 offers no conditional delete to close that window).
        """
        deadline = time.monotonic() + wait
        if self.is_local:
            import fcntl

            key = self._key(rel)
            self._fs.makedirs(key.rpartition("/")[0], exist_ok=True)
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        self._wait_for_lock(rel, deadline)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
            return
        token = uuid.uuid4().hex
        while True:
            claim = {"token": token, "expires": time.time() + lease}
            if self.create(rel, json.dumps(claim).encode()):
                break
            held = self._lease(rel)
            if held is not None and held.get("token") == token:
                break  # our own claim: a retried conditional PUT is refused by the try that landed
            if held is not None and held["expires"] < time.time():
                time.sleep(0.05)
                if self._lease(rel) == held:  # still the same, expired lease: its holder is gone
                    self.delete(rel)
                    continue
            self._wait_for_lock(rel, deadline)
        try:
            yield
        finally:
            if (self._lease(rel) or {}).get("token") == token:
                self.delete(rel)

    def _lease(self, rel: str) -> dict[str, Any] | None:
        try:
            held = self.read_json(rel)
        except FileNotFoundError:
            return None
        except ValueError:  # caught between its creation and its bytes: give it time
            return {"token": None, "expires": time.time() + 1}
        return held if isinstance(held, dict) else None

    def _wait_for_lock(self, rel: str, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the lock {self.uri(rel)} is still held by another writer; "
                "this try gives up (a retry takes it once released)"
            )
        time.sleep(0.01 + 0.04 * (uuid.uuid4().int % 100) / 100)  # jitter: waiters do not march in step

    def move(self, src_rel: str, dst_rel: str) -> str:
        """Move ``src_rel`` onto ``dst_rel`` (replacing it): a rename locally, a copy then a delete on S3."""
        dst = self._key(dst_rel)
        self._fs.makedirs(dst.rpartition("/")[0], exist_ok=True)
        self._fs.mv(self._key(src_rel), dst)
        return self.uri(dst_rel)

    @property
    def is_local(self) -> bool:
        return str(self.root.protocol) in {"file", "local"}

    def copy(self, src_rel: str, dst_rel: str) -> str:
        return self.write_bytes(dst_rel, self.read_bytes(src_rel))

    def delete(self, rel: str) -> None:
        """Remove ``rel`` (a file or a folder); a path already gone is not an error."""
        key = self._key(rel)
        with contextlib.suppress(FileNotFoundError):
            if self._fs.exists(key):
                self._fs.rm(key, recursive=True)

    def walk_files(self, rel: str) -> Iterator[str]:
        key = self._key(rel)
        if not self._fs.exists(key):
            return
        root_key = self._key("")
        for found in self._fs.find(key):
            yield str(found)[len(root_key) :].lstrip("/")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_lake() -> Lake:
    from mlops.core.settings import load_settings

    return Lake(load_settings().lake_uri)
