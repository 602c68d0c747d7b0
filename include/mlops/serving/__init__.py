"""Online serving: the champion of a use case over HTTP, and the log of what it was asked.

``app`` is the FastAPI service (``python -m mlops serve``), ``champion`` keeps the loaded model in
step with the registry's ``champion`` alias, ``schema`` checks request rows against the use
case's batch columns, and ``request_log`` writes every answered request to a write-ahead log on
local disk before the answer leaves, then ships it to the lake in batches (``serving/<uc>/<day>/``;
``mlops.data.request_log`` reads committed batches back for drift monitoring).
"""
