"""What the Airflow UI's task buttons open: GX Data Docs, the MLflow run, the Evidently report.

Tasks return typed results (``mlops.core.results``) holding lake URIs or URLs; each button reads
the field that :data:`~mlops.core.results.RESULT_LINKS` names from the task's XCom in the API server. Lake files are served by the plugin's small FastAPI app
at ``/mlops/lake/view?path=<path in lake>``, so the same button works for a local lake and S3.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

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
    """Reject paths that could escape the lake root."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in {"..", "."} or p.startswith("~") for p in parts):
        raise ValueError(f"not a path inside the lake: {path!r}")
    return "/".join(parts)


def create_lake_app() -> Any:
    """FastAPI app (mounted by the plugin under /mlops) that shows reports and docs from the lake."""
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import Response

    app = FastAPI(title="MLOps lake viewer", docs_url=None, redoc_url=None)

    @app.get("/lake/view")
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
        return Response(content=lake.read_bytes(rel), media_type=media)

    return app
