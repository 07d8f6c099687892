"""One platform process: some workers and maybe the gateway, until a signal says stop.

`airparadis worker …` and `airparadis gateway` run this (each container of the compose stack,
each child of `airparadis up`). It always stops on SIGINT or SIGTERM, even while it waits for
NATS; a second signal exits at once. Exit codes tell a supervisor what happened:
0 stopped on request; 70 a background task died; 75 gave up on NATS (a finite
`nats_max_reconnect_attempts`): restart me.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator

import uvicorn

from airparadis.wiring import WORKERS, Platform, Worker, build_platform
from shared.settings import Settings
from shared.tls import TlsConfigError

log = logging.getLogger(__name__)

EXIT_TASK_FAILED = 70
EXIT_BUS_GONE = 75
EXIT_CONFIG = 78  # EX_CONFIG: a setting no restart can fix (a CA file that is not there)


class GatewayServer(uvicorn.Server):
    """uvicorn without its own signal handling: it would re-raise Ctrl-C once it has stopped,
    interrupting the shutdown of everything else. This process owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop`; a second one ends the process at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now", extra={"signal": signum})
            os._exit(128 + signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


async def first_of(*waits: asyncio.Future[object] | asyncio.Task[object]) -> None:
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)


async def watch_tasks(platform: Platform) -> str:
    """Returns the name of the first background task of the platform that dies."""
    while True:
        failed = platform.failed_task
        if failed is not None:
            return failed
        await asyncio.sleep(1.0)


async def run(
    settings: Settings, workers: tuple[Worker, ...] = WORKERS, with_gateway: bool = True
) -> int:
    """Run workers (and the gateway) until SIGINT/SIGTERM; the exit code."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    platform = build_platform(settings, workers, with_gateway=with_gateway)
    stopping = asyncio.ensure_future(stop.wait())
    gone = asyncio.ensure_future(platform.connection.gone_for_good.wait())
    starting = asyncio.ensure_future(platform.start())
    code = 0
    try:
        await first_of(starting, stopping, gone)
        if not starting.done():  # stopped (or gave up on NATS) while connecting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return EXIT_BUS_GONE if gone.done() else 0
        starting.result()  # raise a start failure
        log.info(
            "process running",
            extra={
                "workers": list(workers),
                "gateway": f"http://{settings.http_host}:{settings.http_port}"
                if with_gateway
                else None,
            },
        )
        failed = asyncio.ensure_future(watch_tasks(platform))
        server = gateway_server(platform) if platform.gateway else None
        serving = asyncio.ensure_future(server.serve()) if server else None
        waits = [stopping, gone, failed, *([serving] if serving else [])]
        await first_of(*waits)
        if failed.done():
            log.error("a background task died; stopping", extra={"task": failed.result()})
            code = EXIT_TASK_FAILED
        elif gone.done():
            code = EXIT_BUS_GONE
        failed.cancel()
        if server is not None and serving is not None:
            server.should_exit = True
            await serving
    finally:
        for waiting in (stopping, gone):
            waiting.cancel()
        await platform.stop()
        log.info("process stopped", extra={"code": code})
    return code


def gateway_server(platform: Platform) -> GatewayServer:
    settings = platform.settings
    return GatewayServer(
        uvicorn.Config(
            platform.gateway,  # type: ignore[arg-type]
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # The client address rate limits count: a trusted proxy's X-Forwarded-For.
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    )


def run_process(
    settings: Settings, workers: tuple[Worker, ...] = WORKERS, with_gateway: bool = True
) -> int:
    try:
        return asyncio.run(run(settings, workers, with_gateway))
    except TlsConfigError as error:
        log.error("cannot start: %s", error)
        return EXIT_CONFIG
