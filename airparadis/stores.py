"""The ClickHouse store a command works on (`airparadis keys`, `airparadis feedback export`).

With a ClickHouse server (AIRPARADIS_CLICKHOUSE_URL) the command opens it directly. In the
embedded mode it opens the chDB folder, or, while `airparadis up` runs and its store worker holds
that folder, goes through the store worker on the bus (rpc.store.query, and rpc.store.insert for
the few tables other processes may write: shared/store_reads.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shared.settings import Settings
from shared.storage import ChdbStore, StorageError, Store, apply_migrations, open_store


@contextmanager
def command_store(settings: Settings) -> Iterator[tuple[Store, str]]:
    """The store of the platform these settings name, and where it is (for the user)."""
    if settings.clickhouse_url:
        store = open_store(settings)
        try:
            yield store, getattr(store, "address", "ClickHouse")
        finally:
            store.close()
        return
    try:
        chdb = ChdbStore(settings.chdb_path)
    except StorageError as held:
        # A running store worker holds the folder: go through it.
        with _through_the_bus(settings, held) as bus_store:
            yield bus_store, f"the store worker of the running platform ({settings.chdb_path})"
        return
    try:
        apply_migrations(chdb, settings.retention_days)
        yield chdb, str(settings.chdb_path)
    finally:
        chdb.close()


@contextmanager
def _through_the_bus(settings: Settings, held: StorageError) -> Iterator[Store]:
    import nats

    from shared.bus import nats_credentials, nats_servers
    from shared.store_reads import BusStore

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="command-bus", daemon=True)
    thread.start()
    servers = nats_servers(settings)
    connect = nats.connect(
        servers=servers,
        **nats_credentials(settings),
        connect_timeout=5,
        allow_reconnect=False,
    )
    try:
        try:
            nc = asyncio.run_coroutine_threadsafe(connect, loop).result(15)
        except Exception as error:
            raise StorageError(
                f"cannot open the chDB folder ({held}) and no platform answers on "
                f"{', '.join(servers)} ({type(error).__name__}: {error})"
            ) from error
        try:
            yield BusStore(nc, loop)
        finally:
            asyncio.run_coroutine_threadsafe(nc.close(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
