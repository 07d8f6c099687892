"""GET /healthz (is this process able to work?) and GET /readyz (can the platform answer?)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.gateway.context import Gateway, GatewayDep
from shared import subjects
from shared.messages import InferStatus

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(gw: GatewayDep) -> JSONResponse:
    """The process answers and has not given up on the bus (200); while NATS is away it
    keeps trying, still 200, and says so. 503 once it gave up (it is about to exit)."""
    bus = gw.connection.describe()
    healthy = not gw.connection.closed
    return JSONResponse(
        {"status": "ok" if healthy else "failing", "bus": bus}, status_code=200 if healthy else 503
    )


async def _model(gw: Gateway) -> dict[str, Any]:
    try:
        reply = await gw.nc.request(subjects.INFER_STATUS, b"", timeout=2.0)
        status = InferStatus.model_validate_json(reply.data)
    except (ValidationError, Exception) as exc:
        return {"ok": False, "reason": f"infer did not answer: {type(exc).__name__} {exc}".strip()}
    return {"ok": status.ready, **status.model_dump(exclude={"schema_version", "ready"})}


@router.get("/readyz")
async def readyz(gw: GatewayDep) -> JSONResponse:
    """Ready when NATS is connected, the store answers, a model is serving and no consumer
    is stalled."""
    checks: dict[str, Any] = {"nats": {"ok": gw.connection.connected, **gw.connection.describe()}}
    try:
        checks["store"] = {"ok": await gw.repository.ping()}
    except Exception as exc:
        checks["store"] = {"ok": False, "reason": str(exc)}
    checks["model"] = (
        await _model(gw) if gw.connection.connected else {"ok": False, "reason": "no bus"}
    )
    if gw.consumers is not None:
        health = list(gw.consumers.health.values())
        stalled = [h.describe() for h in health if h.stalled]
        checks["consumers"] = {
            "ok": not stalled,
            "backlog": {h.durable: h.backlog for h in health},
            **({"stalled": stalled} if stalled else {}),
        }
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
