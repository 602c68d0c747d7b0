"""The plugin's FastAPI app, mounted by Airflow's API server under ``/mlops``.

- ``/mlops/lake/view?path=<path in lake>``: HTML/JSON reports from the lake (local or S3), what
  the task buttons and the pages' report links open.
- ``/mlops/ui/<use case>/<page>``: the platform's pages (:mod:`~mlops.orchestration.ui.pages`).

Everything except the static files sits behind Airflow's authentication (:func:`require_reader`).
The app is built only in the API server (:func:`serves_api`), as the edge3 provider does.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

from mlops.orchestration.ui.hrefs import safe_lake_path

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
# Our own pages run our own script and style only; data values are escaped text.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {"ui.css": "text/css", "ui.js": "text/javascript"}


def serves_api(argv: Sequence[str]) -> bool:
    """Whether this process is Airflow's API server (``airflow api-server``, also as started by
    ``airflow standalone``, and its workers), judged by its command line as the edge3 provider
    does; the API server's development entry point (``fastapi dev .../api_fastapi/main.py``) too.
    The scheduler, DAG processor, triggerer and workers load plugins but never serve their apps."""
    return (len(argv) > 1 and argv[1] == "api-server") or (
        len(argv) > 2 and argv[2].replace("\\", "/").endswith("airflow/api_fastapi/main.py")
    )


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


def create_app(reader: Any = None) -> Any:
    """The app: the lake viewer and the pages. ``reader`` is the auth dependency (default
    :func:`require_reader`)."""
    from fastapi import FastAPI

    app = FastAPI(title="MLOps lake viewer", docs_url=None, redoc_url=None, openapi_url=None)
    reader = reader or require_reader()
    _add_lake_viewer(app, reader)
    _add_pages(app, reader)
    return app


def _add_lake_viewer(app: Any, reader: Any) -> None:
    from fastapi import Depends, HTTPException, Query
    from fastapi.responses import Response

    about = "path inside the lake, e.g. reports/churn/2026-01-26/drift_report.html"

    @app.get("/lake/view", dependencies=[Depends(reader)])
    def view(path: str = Query(..., description=about)) -> Response:
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


def _use_cases() -> tuple[dict[str, Any], dict[str, str]]:
    from mlops.core.config import load_use_cases
    from mlops.core.settings import load_settings

    good, bad = load_use_cases(load_settings().config_dir)
    return good, {k: str(v) for k, v in bad.items()}


def _add_pages(app: Any, reader: Any) -> None:
    from fastapi import Depends, HTTPException
    from fastapi.responses import HTMLResponse, RedirectResponse, Response

    from mlops.orchestration.ui import pages

    @app.get("/ui", dependencies=[Depends(reader)])
    def ui_index() -> Response:
        good, bad = _use_cases()
        if good and not bad:  # straight to the first use case; the switch at the top changes it
            return RedirectResponse(f"/mlops/ui/{quote(sorted(good)[0])}/overview")
        return HTMLResponse(pages.index(sorted(good), bad), headers=PAGE_HEADERS)

    @app.get("/ui/static/{name}")
    def ui_static(name: str) -> Response:
        if name not in STATIC_TYPES:
            raise HTTPException(status_code=404)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        return Response((pages.STATIC / name).read_bytes(), media_type=STATIC_TYPES[name], headers=headers)

    @app.get("/ui/{use_case}", dependencies=[Depends(reader)])
    def ui_use_case(use_case: str) -> Response:
        return RedirectResponse(f"/mlops/ui/{quote(use_case)}/overview")

    @app.get("/ui/{use_case}/{name}", dependencies=[Depends(reader)])
    def ui_page(use_case: str, name: str) -> Response:
        from mlops.core.lake import get_lake

        good, _ = _use_cases()
        if use_case not in good:
            raise HTTPException(status_code=404, detail=f"no use case {use_case!r}")
        if name not in pages.PAGES:
            raise HTTPException(status_code=404, detail=f"no page {name!r}; pages: {', '.join(pages.PAGES)}")
        html = pages.render(get_lake(), good[use_case], sorted(good), name)
        return HTMLResponse(html, headers=PAGE_HEADERS)
