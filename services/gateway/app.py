"""The HTTP API: predictions and feedback go through the event pipeline, never in-process.

The routes live in routes/, one router per resource; what they need comes from the `Gateway`
built by the wiring (context.py). Every error is JSON, {"error": <kind>, "reason": <what to
fix>} (errors.py); bodies are limited in size and requests in rate (limits.py); API keys and
their scopes are checked per route (security.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from services.gateway.context import Gateway
from services.gateway.errors import install_error_handlers
from services.gateway.limits import BodySizeLimit
from services.gateway.routes import (
    docs,
    explain,
    feedback,
    health,
    keys,
    monitor,
    pages,
    predictions,
)
from services.gateway.routes.pages import STATIC
from services.gateway.security import document_security


def create_app(gateway: Gateway, **fastapi_kwargs: Any) -> FastAPI:
    app = FastAPI(
        title="Air Paradis sentiment API",
        version="1",
        description="Will readers take this tweet as positive or negative?",
        # The documentation pages come from routes/docs.py, with no CDN.
        docs_url=None,
        redoc_url=None,
        **fastapi_kwargs,
    )
    app.state.gateway = gateway
    app.add_middleware(BodySizeLimit, max_bytes=gateway.settings.http_max_body_kb * 1024)
    install_error_handlers(app)
    docs.install(app)  # before /static: its assets live below /static/docs
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    routers = [module.router for module in (pages, predictions, feedback, explain, monitor, health)]
    routers.append(keys.whoami_router)
    if gateway.settings.auth_required:  # an open API hands out no keys
        routers.append(keys.router)
    for router in routers:
        app.include_router(router)
    if gateway.settings.auth_required:
        _document_security(app, routers)
    return app


def _document_security(app: FastAPI, routers: list[APIRouter]) -> None:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_security(plain(), routers)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
