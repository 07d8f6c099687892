"""The HTTP API: predictions and feedback go through the event pipeline, never in-process.

The routes live in routes/, one router per resource; what they need comes from the `Gateway`
built by the wiring (context.py). Every error is JSON, {"error": <kind>, "reason": <what to
fix>} (errors.py); bodies are limited in size (limits.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.gateway.context import Gateway
from services.gateway.errors import install_error_handlers
from services.gateway.limits import BodySizeLimit
from services.gateway.routes import explain, feedback, health, monitor, pages, predictions
from services.gateway.routes.pages import STATIC


def create_app(gateway: Gateway, **fastapi_kwargs: Any) -> FastAPI:
    app = FastAPI(
        title="Air Paradis sentiment API",
        version="1",
        description="Will readers take this tweet as positive or negative?",
        **fastapi_kwargs,
    )
    app.state.gateway = gateway
    app.add_middleware(BodySizeLimit, max_bytes=gateway.settings.http_max_body_kb * 1024)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (pages, predictions, feedback, explain, monitor, health):
        app.include_router(router.router)
    return app
