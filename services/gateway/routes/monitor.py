"""GET /v1/monitor: the key figures of the dashboards, from the same SQL (for /monitor), with the
requests the rate limits refused; GET /v1/limits: the limits and their refusals."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.gateway.context import GatewayDep
from services.gateway.errors import GUARDED, responses, unavailable
from services.gateway.monitor import monitor_figures
from services.gateway.security import Caller, Require
from shared.scaling import read_status

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["monitoring"])

Monitor = Annotated[Caller, Depends(Require("monitor"))]


@router.get("/monitor", responses=responses(422, *GUARDED, 503))
async def monitor(
    gw: GatewayDep,
    caller: Monitor,
    hours: Annotated[int, Query(ge=1, le=24 * 31, description="Window, in hours.")] = 6,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
) -> JSONResponse:
    """Traffic, latency, error rate, positive rate, drift and alerts over the last hours; the
    requests every gateway refused for their rate in that window, as stored for Grafana
    (`rate_limited_stored`); those this gateway refused since it started, counted in its
    memory (`rate_limited`); and, under `airparadis up`, the processes of each scaled worker and
    the scaling decisions (`scaling`, from the supervisor's status file; null otherwise)."""
    try:
        figures = await asyncio.to_thread(
            monitor_figures, gw.repository.store, gw.settings.model_name, hours, model_version
        )
    except Exception as exc:
        log.exception("monitor query failed")
        raise unavailable("store_unavailable", f"ClickHouse did not answer: {exc}") from exc
    figures["rate_limited"] = gw.limiter.totals()
    scaling = read_status(gw.settings.home)
    figures["scaling"] = scaling.model_dump() if scaling is not None else None
    return JSONResponse(jsonable_encoder(figures))


@router.get("/limits", responses=responses(*GUARDED))
async def limits(gw: GatewayDep, caller: Monitor) -> dict[str, Any]:
    """The rate limits per API key and per client address, and the requests this gateway
    refused for them since it started (counted per process, not stored)."""
    return jsonable_encoder(
        {
            "auth": "on" if gw.settings.auth_required else "off",
            "limits": {
                name: {"rate_per_s": rule.rate_per_s, "burst": rule.burst}
                for name, rule in gw.limiter.limits.items()
            },
            "rate_limited": gw.limiter.totals(),
        }
    )
