"""GET /v1/monitor: the key figures of the dashboards, from the same SQL (for /monitor)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.gateway.context import GatewayDep
from services.gateway.errors import responses, unavailable
from services.gateway.monitor import monitor_figures

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["monitoring"])


@router.get("/monitor", responses=responses(422, 503))
async def monitor(
    gw: GatewayDep,
    hours: Annotated[int, Query(ge=1, le=24 * 31, description="Window, in hours.")] = 6,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
) -> JSONResponse:
    """Traffic, latency, error rate, positive rate, drift and alerts over the last hours."""
    try:
        figures = await asyncio.to_thread(
            monitor_figures, gw.repository.store, gw.settings.model_name, hours, model_version
        )
    except Exception as exc:
        log.exception("monitor query failed")
        raise unavailable("store_unavailable", f"ClickHouse did not answer: {exc}") from exc
    return JSONResponse(jsonable_encoder(figures))
