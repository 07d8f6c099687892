"""/docs (Swagger UI), /redoc, /asyncapi (the bus's contract) and /favicon.ico with no
network: the documentation pages' scripts and styles are served from an installed package
(fastapi-offline ships Swagger UI's and ReDoc's built files), never from a CDN, and ReDoc asks
for no Google Fonts, so they render on a box without internet. A Content-Security-Policy keeps
both pages from loading anything from elsewhere (ReDoc's footer logo would come from
cdn.redoc.ly)."""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from services.gateway.routes.pages import STATIC
from shared.contract import document

ASSETS_URL = "/static/docs"
ASSETS = Path(str(files("fastapi_offline") / "static"))
FAVICON = Path(STATIC) / "favicon.svg"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# Everything from this origin only; the pages' own inline start-up scripts and styles, and
# ReDoc's workers, allowed.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="icon" href="/favicon.ico">
  <style>body {{ margin: 0; }} a[href*="redocly.com"] {{ display: none; }}</style>
</head>
<body>
  <div id="redoc"></div>
  <script src="{script}"></script>
  <script>Redoc.init({spec}, {{}}, document.getElementById("redoc"));</script>
</body>
</html>
"""


def mount_assets(app: FastAPI) -> None:
    """Swagger UI's and ReDoc's files, from the installed package."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")


def _walled(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CSP
    return response


def _title(app: FastAPI, what: str) -> str:
    return f"{app.title} — {what}"


def install(app: FastAPI) -> None:
    """The documentation pages of `app` (created with docs_url=None, redoc_url=None)."""
    mount_assets(app)
    openapi_url = app.openapi_url or "/openapi.json"
    router = APIRouter(include_in_schema=False)
    contract: dict[str, Any] = {}  # built at the first request

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        return _walled(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=_title(app, "API"),
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url="/favicon.ico",
                oauth2_redirect_url=OAUTH2_REDIRECT,
                # No badge fetched from validator.swagger.io.
                swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
            )
        )

    @router.get(OAUTH2_REDIRECT)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        page = REDOC_PAGE.format(
            title=html.escape(_title(app, "API reference")),
            script=f"{ASSETS_URL}/redoc.standalone.js",
            spec=json.dumps(openapi_url),
        )
        return _walled(HTMLResponse(page))

    @router.get("/asyncapi")
    async def asyncapi() -> JSONResponse:
        """The bus's AsyncAPI 3.0 document (shared/contract.py)."""
        if not contract:
            contract.update(document())
        return JSONResponse(contract)

    @router.get("/favicon.ico")
    async def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/svg+xml")

    app.include_router(router)
