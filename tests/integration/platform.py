"""Helpers for the tests that run the platform's workers against real servers (the fixtures
that start them are in conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx

from airparadis.wiring import Platform, build_platform
from shared.settings import Settings

StartPlatform = Callable[..., AbstractAsyncContextManager[Platform]]


async def count(platform: Platform, table: str) -> int:
    assert platform.repository is not None
    return await platform.repository.count(table)  # type: ignore[arg-type]


def rows_in(platform: Platform, table: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A condition for `eventually`: the table holds exactly n distinct rows."""

    async def check() -> bool:
        return await count(platform, table) == n

    return check


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Platform]:
    """Every worker and the gateway in this process, stopped on the way out."""
    running = build_platform(settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def gateway_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the platform's gateway, in process."""
    assert platform.gateway is not None
    transport = httpx.ASGITransport(app=platform.gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
