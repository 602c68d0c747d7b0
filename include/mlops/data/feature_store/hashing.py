"""What a partition's rows are: content hashes of frames, and rows carried with their row hashes.

A partition's content hash is its data version (training sets and scores name it), so it must be
the same however the day was cut into parts: pandas hashes row by row, and the row hashes of the
parts, fed in order, give the hash of the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

ROW_HASH = "__row_hash"
"""The column holding each row's hash in staged rows (``Rows.staged``)."""


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


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (order-sensitive), used as the partition's data version."""
    hasher = FrameHash()
    hasher.update(frame)
    return hasher.hexdigest()


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
