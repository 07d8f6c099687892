"""The store read through the store worker: what the gateway and the alerter's checks use in
the embedded mode, where only the store worker's process may open the chDB folder.

`BusStore` has the `Store` interface for reads: each query travels on rpc.store.query and the
store worker answers with the rows in Arrow IPC form (types exact, datetimes in UTC) from a
read-only connection. Writes are the store worker's own: through the bus, never here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared import subjects
from shared.messages import RequestFailed, StoreQueryRequested
from shared.storage import StorageError, arrow_file_rows, bind_parameters

if TYPE_CHECKING:
    from nats.aio.client import Client

REPLY_KIND_HEADER = "Airparadis-Reply"
ROWS = "arrow-rows"


class BusStore:
    """Read-only store whose queries the store worker runs. Call from worker threads (as
    every store call is made), never from the event loop's own thread."""

    def __init__(self, nc: Client, loop: asyncio.AbstractEventLoop, timeout_s: float = 10.0):
        self._nc = nc
        self._loop = loop
        self._timeout_s = timeout_s

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("BusStore.query blocks: call it from a worker thread")
        request = StoreQueryRequested(sql=sql, parameters=bind_parameters(parameters))
        pending = asyncio.run_coroutine_threadsafe(
            self._nc.request(
                subjects.STORE_QUERY, request.model_dump_json().encode(), timeout=self._timeout_s
            ),
            self._loop,
        )
        try:
            answer = pending.result(self._timeout_s + 1.0)
        except Exception as error:
            raise StorageError(
                f"the store worker did not answer: {type(error).__name__}"
            ) from error
        if (answer.headers or {}).get(REPLY_KIND_HEADER) == ROWS:
            return arrow_file_rows(answer.data)
        failed = RequestFailed.model_validate_json(answer.data)
        raise StorageError(f"the store worker refused the query ({failed.kind}): {failed.reason}")

    @property
    def _loop_thread(self) -> int | None:
        return getattr(self._loop, "_thread_id", None)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        raise StorageError("this process reads the store through the store worker: no writes")

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        raise StorageError("this process reads the store through the store worker: no writes")

    def close(self) -> None:
        """Nothing to release: the connection is the process's bus."""
