"""Fixtures for the integration tests: chDB folders, and real servers (nats-server, aiosmtpd)
with the platform's workers on them.

chDB binds a process to one data folder (see shared/storage.py:ChdbStore): while a store is
open on one folder, no other folder can be opened. So every test must close the chDB stores it
opens before it ends, and the storage tests share one folder, each in a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from faststream.nats import NatsBroker

from airparadis.wiring import WORKERS, Platform, Worker, build_platform
from shared.nats_server import NatsServerProcess
from shared.registry import Registry
from shared.settings import Settings
from shared.storage import ChdbStore
from tests.integration.platform import StartPlatform
from tests.servers import Inbox, nats_server, smtp_server


@pytest.fixture(autouse=True)
def no_chdb_store_left_open() -> Iterator[None]:
    """Closes any chDB store a test left open, and fails that test, so that one leak does not
    make every later test fail to open its own folder."""
    yield
    leaked = ChdbStore.open_stores()
    for store in leaked:
        store.close()
    if leaked:
        folders = sorted({str(store.path) for store in leaked})
        pytest.fail(f"the test left chDB stores open on {folders}; close them when done")


@pytest.fixture(scope="session")
def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chDB data folder the storage tests share."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def database_name() -> str:
    """A database name no other test uses."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServerProcess]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as (controller, inbox):
        yield controller.port, inbox


@pytest.fixture
def platform_settings(
    settings: Settings, nats: NatsServerProcess, registry: str, smtp: tuple[int, Inbox]
) -> Settings:
    return settings.model_copy(
        update={
            "nats_url": nats.url,
            "mlflow_tracking_uri": registry,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp[0],
            "batch_max_wait_ms": 10,
            "store_flush_ms": 50,
            "ack_wait_s": 3.0,
        }
    )


@pytest.fixture
def start_platform(platform_settings: Settings) -> StartPlatform:
    @asynccontextmanager
    async def start(
        workers: tuple[Worker, ...] = WORKERS, settings: Settings | None = None
    ) -> AsyncIterator[Platform]:
        platform = build_platform(settings or platform_settings, workers, with_gateway=False)
        await platform.start()
        try:
            yield platform
        finally:
            await platform.stop()

    return start


@pytest.fixture
async def upstream(nats: NatsServerProcess) -> AsyncIterator[NatsBroker]:
    """An upstream app publishing on the bus directly."""
    broker = NatsBroker(nats.url)
    await broker.connect()
    yield broker
    await broker.stop()


@pytest.fixture
def second_version(
    registry: str, platform_settings: Settings, airline_tweets: Path
) -> Iterator[str]:
    """A second registered version; the champion is restored afterwards."""
    from tests.integration.registry import train_fixture_model

    champion = Registry(registry, platform_settings.model_name).champion()
    assert champion is not None
    yield train_fixture_model(registry, platform_settings, airline_tweets)
    Registry(registry, platform_settings.model_name).promote(champion.version)
