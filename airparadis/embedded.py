"""`airparadis up`: the whole platform in one process, on one machine, with no Docker.

Starts nats-server (unless AIRPARADIS_NATS_URL points at one), opens chDB (unless
AIRPARADIS_CLICKHOUSE_URL is set), makes sure the registry has a champion model (training the
baseline on first start), runs every worker and serves the gateway until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from airparadis.wiring import WORKERS, Platform, Worker, build_platform
from shared.nats_server import NatsServerProcess
from shared.settings import Settings

log = logging.getLogger(__name__)


def local_nats(settings: Settings) -> tuple[Settings, NatsServerProcess | None]:
    """Start the local nats-server when no URL is configured; settings then point at it."""
    if settings.nats_url:
        return settings, None
    server = NatsServerProcess(settings.nats_store_dir, port=settings.nats_port)
    url = server.start()
    return settings.model_copy(update={"nats_url": url}), server


class GatewayServer(uvicorn.Server):
    """uvicorn without its own signal handling: it would re-raise Ctrl-C once it has stopped,
    interrupting the shutdown of everything else. This process owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve_until_signal(platform: Platform) -> None:
    """Serve the gateway (if any) until SIGINT/SIGTERM, or until the server stops by itself."""
    if platform.gateway is None:
        await wait_for_signal()
        return
    settings = platform.settings
    server = GatewayServer(
        uvicorn.Config(
            platform.gateway,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    signalled = asyncio.create_task(wait_for_signal())
    await asyncio.wait({serving, signalled}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    signalled.cancel()
    await serving


async def run(
    settings: Settings, workers: tuple[Worker, ...] = WORKERS, with_gateway: bool = True
) -> None:
    """Run workers (and the gateway) until SIGINT/SIGTERM, then stop everything cleanly."""
    platform = build_platform(settings, workers, with_gateway=with_gateway)
    try:
        await platform.start()
        log.info(
            "platform running",
            extra={
                "workers": list(workers),
                "gateway": f"http://{settings.http_host}:{settings.http_port}"
                if with_gateway
                else None,
            },
        )
        await serve_until_signal(platform)
    finally:
        await platform.stop()
        log.info("platform stopped")


def up(settings: Settings, data: Path | None) -> None:
    """The one command: local servers, a champion model, all workers, the gateway."""
    from airparadis.bootstrap import ensure_champion

    settings.home.mkdir(parents=True, exist_ok=True)
    settings, nats = local_nats(settings)
    try:
        ensure_champion(settings, data)
        asyncio.run(run(settings))
    finally:
        if nats is not None:
            nats.stop()
