"""Helpers for the tests that run the platform's workers against real servers (the fixtures
that start them are in conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from airparadis.wiring import Platform

StartPlatform = Callable[..., AbstractAsyncContextManager[Platform]]


async def count(platform: Platform, table: str) -> int:
    assert platform.repository is not None
    return await platform.repository.count(table)  # type: ignore[arg-type]


def rows_in(platform: Platform, table: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A condition for `eventually`: the table holds exactly n distinct rows."""

    async def check() -> bool:
        return await count(platform, table) == n

    return check
