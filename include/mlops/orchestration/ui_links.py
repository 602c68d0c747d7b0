"""What the Airflow UI's task buttons open: GX Data Docs, the MLflow run, the Evidently report.

Tasks return typed results (``mlops.core.results``) holding lake URIs or URLs; each button reads
the field that :data:`~mlops.core.results.RESULT_LINKS` names from the task's XCom in the API server. Lake files are served by the plugin's small FastAPI app
at ``/mlops/lake/view?path=<path in lake>``, so the same button works for a local lake and S3.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Annotated, Any

from mlops.core.results import RESULT_LINKS

LINK_KEYS = {link.name: link.key for link in RESULT_LINKS}
LAKE_VIEW_PREFIX = "/mlops/lake/view?path="


def browser_url(value: str | None, lake_root_uri: str) -> str:
    """A URL a browser can open for a lake URI or an http(s) URL; "" when there is nothing."""
    if not value:
        return ""
    if value.startswith(("http://", "https://")):
        return value
    root = lake_root_uri.rstrip("/") + "/"
    if value.startswith(root):
        from urllib.parse import quote

        return LAKE_VIEW_PREFIX + quote(value[len(root) :])
    return ""


def xcom_result(ti_key: Any) -> dict[str, Any] | None:
    """The task's return value (a dict) from the metadata DB, or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="return_value",
                run_id=ti_key.run_id,
                dag_ids=ti_key.dag_id,
                task_ids=ti_key.task_id,
                map_indexes=ti_key.map_index,
            ).with_only_columns(XComModel.value)
        ).first()
    if not row:
        return None
    value = row.value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def safe_lake_path(path: str) -> str:
    """A path inside the lake, or ValueError: no parent steps, no schemes or other buckets, no hidden files."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in {"..", "."} or p.startswith(("~", ".")) or ":" in p or "\\" in p for p in parts):
        raise ValueError(f"not a path inside the lake: {path!r}")
    return "/".join(parts)


# Lake files are reports other tools wrote (GX Data Docs, Evidently): their HTML and scripts may
# carry data values. Served from Airflow's origin, they run sandboxed: an opaque origin (no
# Airflow cookies or storage), no network, no forms, and the browser may not sniff other types.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-scripts allow-popups; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:; connect-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def require_reader() -> Any:
    """FastAPI dependency: an authenticated Airflow user allowed to read DAGs (else 401/403).

    Airflow does not authenticate plugin apps itself; this uses its own token check (the API's
    bearer token, or the UI's session cookie) and its auth manager.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, HTTPException

    def check(user: Any) -> Any:
        if not get_auth_manager().is_authorized_dag(method="GET", user=user):
            raise HTTPException(status_code=403, detail="not allowed to read the platform's reports")
        return user

    # Real objects, not strings: FastAPI resolves string annotations in this module's globals.
    check.__annotations__ = {"user": Annotated[Any, Depends(get_user)], "return": Any}
    return check


def create_lake_app() -> Any:
    """FastAPI app (mounted by the plugin under /mlops) that shows reports and docs from the lake."""
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import Response

    app = FastAPI(title="MLOps lake viewer", docs_url=None, redoc_url=None, openapi_url=None)
    reader = require_reader()

    @app.get("/lake/view", dependencies=[Depends(reader)])
    def view(path: str = Query(..., description="path inside the lake, e.g. reports/churn/2026-01-26/drift_report.html")) -> Response:
        from mlops.core.lake import get_lake

        try:
            rel = safe_lake_path(path)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        if not rel.endswith((".html", ".json")):
            raise HTTPException(status_code=400, detail="only .html and .json lake files can be viewed")
        lake = get_lake()
        if not lake.exists(rel):
            raise HTTPException(status_code=404, detail=f"{rel} is not in the lake")
        media = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        return Response(content=lake.read_bytes(rel), media_type=media, headers=SECURITY_HEADERS)

    from mlops.orchestration.platform_pages import add_pages

    add_pages(app, reader)
    return app
