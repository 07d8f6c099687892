"""The web pages: the communication team's tweet check (/) and the monitor (/monitor)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    """The communication team's page."""
    return FileResponse(STATIC / "index.html")


@router.get("/monitor")
async def monitor_page() -> FileResponse:
    """Traffic, latency, error rate and drift, without Grafana."""
    return FileResponse(STATIC / "monitor.html")
