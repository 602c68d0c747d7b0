"""The model server: the champion of each served use case over HTTP (FastAPI, run by uvicorn).

``python -m mlops serve --use-case churn --port 8090`` (``make serve``; the ``model-server``
service of docker-compose.yaml). Endpoints:

=============================  ================================================================
``POST /v1/<uc>/predict``      ``{"rows": [{<batch column>: value, ...}, ...]}`` -> one score (or
                               prediction) per row, for a classifier also its predicted label at
                               the model's decision threshold; the model name, version and
                               threshold, a request id
``GET /v1/<uc>``               the served version, the request fields with their types and
                               limits, the most rows a request may carry
``GET /health``                liveness: 200 while the process answers, with ``ok`` / ``degraded`` /
                               ``unavailable`` per use case and why (the model, the request log)
``GET /ready``                 readiness: 200 when every use case can be served and logged, else
                               503 with each reason: no model, the champion refresh stopped or
                               stale, a served version that is not the registry's champion, a
                               request log that cannot be written or is full
``GET /openapi.json``          the API, with each served use case's request body as JSON Schema
=============================  ================================================================

A request row holds the use case's batch columns (what the upstream system knows), not
features: the server builds the features with the same ``build_features`` that training and
batch scoring use. Errors are JSON ``{"error": ..., "request_id": ...}``: 400 (not JSON, or
nested deeper than a request can be), 404 (a use case this server does not serve), 413 (more
than ``MLOPS_SERVING_MAX_ROWS`` rows, or a body too large for them), 422 (the body or a row
breaks the schema, ``problems`` lists each with its row index and field; or the model returned
a score that is not a finite number), 503 (no champion, or the request log cannot take the
request: the reason says why). A 5xx other than 503 is a bug.

The model follows the ``champion`` alias (``mlops.serving.champion``). Every answered request is
in the request log's write-ahead log on disk before its answer leaves, and shipped to the lake
from there (``mlops.serving.request_log``). Stopping the server (SIGTERM, Ctrl-C) lets requests
in flight finish, then ships the log for at most ``MLOPS_SERVING_DRAIN_SECONDS``; what is left
stays on disk and is shipped by the next start.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# At module level on purpose: FastAPI reads the endpoints' annotations from this module's globals.
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mlops.serving.champion import LoadedModel, ServedModel
from mlops.serving.request_log import LogRefused, RequestLog, output_column
from mlops.serving.schema import InvalidRows, RequestSchema

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake
    from mlops.core.settings import ServingSettings

log = logging.getLogger(__name__)

# A request body may carry this many bytes per allowed row before it is refused unread (413).
BYTES_PER_ROW = 4096
# A request is {"rows": [{field: value}]}: three levels. Deeper JSON is refused (400) before it
# reaches code that recurses over it (repr in an error message, the JSON encoder).
MAX_JSON_DEPTH = 16


@dataclass
class Served:
    """One use case as the server serves it: request checks, the champion, the request log."""

    use_case: UseCase
    schema: RequestSchema
    model: ServedModel
    log: RequestLog

    @property
    def output(self) -> str:
        return output_column(self.use_case)

    def problems(self) -> list[str]:
        """Why this use case is not ready to be served (empty: ready)."""
        return self.model.problems() + self.log.problems()


def served_use_case(use_case: UseCase, lake: Lake, settings: ServingSettings, client: Any) -> Served:
    """Wire a use case to the registry (its ``champion`` alias, the registry's loader) and the lake."""
    from mlops.model import registry

    name = use_case.registered_model_name

    def load(entry: Any) -> Any:
        # The check batch scoring and a rollback make: a model trained on other feature
        # definitions or code than the ones this server builds would be fed inputs it never saw.
        fix = "restart the server if the feature code changed, else retrain"
        registry.check_servable(use_case, entry, builder="this server", fix=fix)
        return registry.load_model(name, str(entry.version))

    def threshold(entry: Any) -> float | None:
        from mlops.model.threshold import threshold_of

        return threshold_of(entry) if use_case.task == "classification" else None

    model = ServedModel(
        name,
        resolve=lambda: registry.alias_version(client, name, registry.CHAMPION),
        load=load,
        refresh_seconds=settings.refresh_seconds,
        threshold=threshold,
    )
    request_log = RequestLog(
        lake,
        use_case,
        wal_dir=settings.wal_dir / use_case.name,
        flush_rows=settings.flush_rows,
        flush_seconds=settings.flush_seconds,
        max_pending_bytes=settings.wal_max_bytes,
        sync=settings.wal_sync,
    )
    return Served(use_case, RequestSchema(use_case), model, request_log)


def _error(status: int, message: str, request_id: str | None = None, **extra: Any) -> JSONResponse:
    # Served requests are recorded in the request log; refused ones only here, one line each.
    log.info("refused request %s with %d: %s", request_id, status, message)
    body = {"error": message, "request_id": request_id, **extra}
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(body, status_code=status, headers=headers)


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # deeper is refused anyway: no need to walk it all
                stack.extend(
                    (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def create_app(served: dict[str, Served], *, max_rows: int, drain_seconds: float = 20.0) -> FastAPI:
    """The FastAPI app serving ``served`` (use case name -> what serves it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for entry in served.values():
            await run_in_threadpool(entry.model.refresh)  # serve from the first request on
            entry.model.start()
            entry.log.start()
        try:
            yield
        finally:
            for entry in served.values():
                entry.model.stop()
            deadline = time.monotonic() + drain_seconds
            for entry in served.values():
                left = await run_in_threadpool(entry.log.close, max(0.0, deadline - time.monotonic()))
                log.info(
                    "request log of %r closed (%d rows left on disk for the next start)",
                    entry.use_case.name,
                    left,
                )

    app = FastAPI(
        title="mlops model server", summary="The champion of each use case, over HTTP", lifespan=lifespan
    )
    max_bytes = max_rows * BYTES_PER_ROW

    @app.post("/v1/{use_case}/predict", include_in_schema=False)  # the served use cases are listed below
    async def predict(use_case: str, request: Request) -> JSONResponse:
        started = time.perf_counter()
        received_at = dt.datetime.now(dt.UTC)
        request_id = uuid.uuid4().hex
        entry = served.get(use_case)
        if entry is None:
            return _error(
                404,
                f"unknown use case {use_case!r}: this server serves {', '.join(sorted(served))}",
                request_id,
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return _error(
                413,
                f"the body has {int(declared)} bytes; at most {max_bytes} ({max_rows} rows) are accepted",
                request_id,
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                return _error(
                    413,
                    f"the body exceeds {max_bytes} bytes ({max_rows} rows); send fewer rows per request",
                    request_id,
                )
        try:
            payload = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            return _error(
                400,
                f'the body is not JSON ({exc}); send {{"rows": [{{"<field>": <value>, ...}}]}}',
                request_id,
            )
        except RecursionError:
            return _error(
                400,
                f"the body nests deeper than {MAX_JSON_DEPTH} levels; a row's values are plain values",
                request_id,
            )
        if _depth(payload) > MAX_JSON_DEPTH:
            return _error(
                400,
                f"the body nests deeper than {MAX_JSON_DEPTH} levels; a row's values are plain values",
                request_id,
            )
        if not isinstance(payload, dict) or "rows" not in payload:
            return _error(422, 'the body must be a JSON object with a "rows" list', request_id)
        extra = sorted(set(payload) - {"rows"})
        if extra:
            return _error(422, f'unknown top-level field(s) {extra}: the body has only "rows"', request_id)
        rows = payload["rows"]
        if not isinstance(rows, list):
            return _error(422, f'"rows" must be a list of row objects, got {type(rows).__name__}', request_id)
        if not rows:
            return _error(422, '"rows" is empty: send at least one row', request_id)
        if len(rows) > max_rows:
            return _error(
                413,
                f"{len(rows)} rows in one request; at most {max_rows} are accepted, split the request",
                request_id,
            )
        return await run_in_threadpool(_predict, entry, rows, request_id, received_at, started)

    def predict_for(name: str) -> Any:
        async def predict_use_case(request: Request) -> JSONResponse:
            return await predict(name, request)

        return predict_use_case

    for name, entry in served.items():
        # One documented route per served use case, its request body as JSON Schema (what the
        # API fuzz test generates requests from); the handler is the generic one above.
        body_schema = entry.schema.json_schema(max_rows)
        app.add_api_route(
            f"/v1/{name}/predict",
            predict_for(name),
            methods=["POST"],
            summary=f"Predict {entry.output} for rows of use case {name!r}",
            openapi_extra={
                "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}
            },
        )

    @app.get("/v1/{use_case}")
    def describe(use_case: str) -> JSONResponse:
        entry = served.get(use_case)
        if entry is None:
            return _error(
                404, f"unknown use case {use_case!r}: this server serves {', '.join(sorted(served))}"
            )
        return JSONResponse(
            {
                "use_case": use_case,
                "task": entry.use_case.task,
                "output": entry.output,
                "model": entry.model.status(),
                "max_rows": max_rows,
                "request": entry.schema.describe(),
            }
        )

    @app.get("/health")
    def health() -> JSONResponse:
        """Liveness: the process answers (always 200); the body says how each use case is doing."""
        report = {
            name: entry.model.status() | {"request_log": entry.log.status()} for name, entry in served.items()
        }
        for name, entry_status in report.items():
            log_status = entry_status["request_log"]
            log_problem = log_status["broken"] or (
                f"the request log cannot ship to the lake: {log_status['error']}"
                if log_status["error"]
                else None
            )
            if entry_status["status"] == "ok" and (log_problem or served[name].log.problems()):
                entry_status["status"] = "degraded"
                entry_status["problem"] = log_problem or served[name].log.problems()[0]
        states = {r["status"] for r in report.values()}
        overall = next(s for s in ("unavailable", "degraded", "ok") if s in states)
        return JSONResponse({"status": overall, "use_cases": report})

    @app.get("/ready")
    def ready() -> JSONResponse:
        """Readiness: 200 when every use case can be served and logged, else 503 with the reasons."""
        report = {name: entry.problems() for name, entry in served.items()}
        ok = not any(report.values())
        body = {
            "ready": ok,
            "use_cases": {name: {"ready": not found, "problems": found} for name, found in report.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    return app


def _predict(
    entry: Served, rows: list[Any], request_id: str, received_at: dt.datetime, started: float
) -> JSONResponse:
    """Check, featurize, score and log one request (in a worker thread: it is CPU work)."""
    from mlops.data.features import build_features
    from mlops.model.threshold import PREDICTED_LABEL
    from mlops.model.training import DECISION_THRESHOLD, predict_scores

    use_case = entry.use_case
    try:
        typed = entry.schema.check(rows)
    except InvalidRows as exc:
        return _error(422, str(exc), request_id, problems=exc.listed(), problem_count=len(exc.problems))
    loaded: LoadedModel | None = entry.model.current  # read once: a refresh may swap it meanwhile
    if loaded is None:
        return _error(
            503,
            f"use case {use_case.name!r}: no model to serve: {entry.model.status()['problem']}",
            request_id,
        )
    refused = entry.log.refusal()  # before the work; append checks again, atomically
    if refused:
        return _error(503, f"use case {use_case.name!r}: {refused}", request_id)
    features = build_features(entry.schema.frame(typed), use_case)
    scores = predict_scores(loaded.model, features[use_case.feature_names], use_case.task)
    outputs = [float(s) for s in scores]
    entity, out = use_case.schema_.entity, entry.output
    not_finite = [i for i, value in enumerate(outputs) if not math.isfinite(value)]
    if not_finite:
        # Not served, so not in the request log: refused here, with the rows the model failed on.
        return _error(
            422,
            f"use case {use_case.name!r}: model v{loaded.version} returned no finite {out} for {len(not_finite)} row(s), "
            f"first row {not_finite[0]}; check those rows' values (nothing was answered for this request)",
            request_id,
            rows=not_finite[:20],
        )
    model: dict[str, Any] = {"name": loaded.name, "version": loaded.version, "run_id": loaded.run_id}
    predictions = [{entity: row[entity], out: value} for row, value in zip(typed, outputs, strict=True)]
    if use_case.task == "classification":
        # The score stays the probability; the label is decided at the version's own threshold.
        cut = DECISION_THRESHOLD if loaded.threshold is None else loaded.threshold
        model["decision_threshold"] = cut
        for prediction, value in zip(predictions, outputs, strict=True):
            prediction[PREDICTED_LABEL] = int(value >= cut)
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        entry.log.append(
            request_id=request_id,
            received_at=received_at,
            rows=typed,
            outputs=outputs,
            model_version=loaded.version,
            latency_ms=latency_ms,
        )
    except LogRefused as exc:  # answered => logged: no answer without its log record on disk
        return _error(503, f"use case {use_case.name!r}: {exc}", request_id)
    return JSONResponse(
        {
            "request_id": request_id,
            "use_case": use_case.name,
            "model": model,
            "output": out,
            "predictions": predictions,
            "latency_ms": round(latency_ms, 3),
        },
        headers={"X-Request-ID": request_id},
    )


def serve(use_case_names: list[str], *, host: str, port: int) -> None:
    """Run the model server for ``use_case_names`` until SIGTERM / Ctrl-C (uvicorn, one process)."""
    import uvicorn

    from mlops.core.config import get_use_case
    from mlops.core.lake import Lake
    from mlops.core.settings import load_settings
    from mlops.model import registry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlops").setLevel(logging.INFO)
    settings = load_settings()
    use_cases = [
        get_use_case(name, settings.config_dir) for name in dict.fromkeys(use_case_names)
    ]  # fail fast
    lake = Lake(settings.lake_uri)
    client = registry.configure_mlflow()
    served = {
        use_case.name: served_use_case(use_case, lake, settings.serving, client) for use_case in use_cases
    }
    app = create_app(served, max_rows=settings.serving.max_rows, drain_seconds=settings.serving.drain_seconds)
    log.info(
        "serving %s on http://%s:%d (champion re-resolved every %gs; request log via %s to %s)",
        ", ".join(served),
        host,
        port,
        settings.serving.refresh_seconds,
        settings.serving.wal_dir,
        settings.lake_uri,
    )
    # One worker process: the request log's WAL (one process per directory) and the refresh threads live in it.
    # log_config=None: uvicorn's loggers go through the logging already configured (Airflow's).
    # No access log: every served request is in the request log, every refused one is logged above.
    # In-flight requests get 30 s, then the log drains for drain_seconds: keep both under the
    # orchestrator's stop grace period (docker-compose.yaml: stop_grace_period).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
