"""The online requests the model server answered, as it logged them to the lake, read back.

The model server (``mlops.serving.request_log``) writes each served row as one log row: the
request id and the row's index in the request, when it was received (UTC), the model version
that answered, the latency, what was returned (``output_column``) and the request columns as
checked. Rows go in Parquet batches at ``layout.serving_batch``, each committed by a manifest
(``OnlineRequestBatch``) written after it at ``layout.serving_manifest``. This module is that
record's home: its columns, its manifest, and the reader that monitoring uses (committed batches
only, each checked against its manifest's hash).
"""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, TypedDict

from mlops.core import layout

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

REQUEST_ID = "request_id"
REQUEST_ROW = "request_row"
RECEIVED_AT = "received_at"
LATENCY_MS = "latency_ms"
MODEL_VERSION = "model_version"
# The columns the log adds to the request columns (plus the output column, score or prediction).
LOG_COLUMNS = (REQUEST_ID, REQUEST_ROW, RECEIVED_AT, MODEL_VERSION, LATENCY_MS)


class OnlineRequestBatch(TypedDict):
    """The manifest of one committed batch of the request log (written after the batch)."""

    use_case: str
    day: str
    batch: str
    uri: str
    rows: int
    requests: int
    first_received_at: str
    last_received_at: str
    model_versions: list[str]
    sha256: str
    written_at: str


class CorruptBatch(ValueError):
    """A committed batch whose file does not match its manifest's hash."""


def output_column(use_case: UseCase) -> str:
    """The column holding what the model returned, named as in the batch predictions."""
    return "score" if use_case.task == "classification" else "prediction"


def read_online_requests(lake: Lake, use_case: str, days: list[dt.date]) -> pd.DataFrame:
    """The request-log rows received on ``days``, committed batches only, in order of arrival."""
    import pandas as pd

    frames = []
    for day in days:
        for rel in lake.children(layout.serving_manifests_dir(use_case, day), ".json"):
            manifest: OnlineRequestBatch = lake.read_json(rel)
            path = layout.serving_batch(use_case, day, manifest["batch"])
            data = lake.read_bytes(path)
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                raise CorruptBatch(
                    f"use case {use_case!r}: {lake.uri(path)} does not match the SHA-256 in {lake.uri(rel)}"
                )
            frames.append(pd.read_parquet(io.BytesIO(data)))
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values([RECEIVED_AT, REQUEST_ID, REQUEST_ROW], kind="stable").reset_index(drop=True)


def online_features(requests: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """Feature rows of logged requests, built as for a batch, with what was returned and by which version."""
    from mlops.data.features import build_features

    out = output_column(use_case)
    features = build_features(requests, use_case)
    for column in (out, MODEL_VERSION, REQUEST_ID, RECEIVED_AT):
        features[column] = requests[column].to_numpy()
    return features
