"""The store read through the store worker: what the gateway and the alerter's checks use in
the embedded mode, where only the store worker's process may open the chDB folder.

`BusStore` has the `Store` interface for reads: each query travels on rpc.store.query and the
store worker answers with the rows in Arrow IPC form (types exact, datetimes in UTC) from a
read-only connection. Writes are the store worker's own, through the events it stores; the one
exception is the API keys (BUS_WRITABLE), which `airparadis keys` and the gateway's /v1/keys
write on rpc.store.insert while the store worker holds the chDB folder.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared import subjects
from shared.messages import RequestFailed, StoreInsertRequested, StoreQueryRequested
from shared.storage import StorageError, arrow_file_rows, bind_parameters, encode_json_each_row

if TYPE_CHECKING:
    from nats.aio.client import Client

REPLY_KIND_HEADER = "Airparadis-Reply"
ROWS = "arrow-rows"
INSERTED = "inserted"
# The tables other processes may insert into through the store worker.
BUS_WRITABLE = frozenset({"api_keys"})


class BusStore:
    """Read-only store whose queries the store worker runs. Call from worker threads (as
    every store call is made), never from the event loop's own thread."""

    def __init__(self, nc: Client, loop: asyncio.AbstractEventLoop, timeout_s: float = 10.0):
        self._nc = nc
        self._loop = loop
        self._timeout_s = timeout_s

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        request = StoreQueryRequested(sql=sql, parameters=bind_parameters(parameters))
        answer = self._request(subjects.STORE_QUERY, request.model_dump_json().encode())
        if (answer.headers or {}).get(REPLY_KIND_HEADER) == ROWS:
            return arrow_file_rows(answer.data)
        failed = RequestFailed.model_validate_json(answer.data)
        raise StorageError(f"the store worker refused the query ({failed.kind}): {failed.reason}")

    def _request(self, subject: str, payload: bytes) -> Any:
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("BusStore calls block: call them from a worker thread")
        pending = asyncio.run_coroutine_threadsafe(
            self._nc.request(subject, payload, timeout=self._timeout_s), self._loop
        )
        try:
            return pending.result(self._timeout_s + 1.0)
        except Exception as error:
            raise StorageError(
                f"the store worker did not answer: {type(error).__name__}"
            ) from error

    @property
    def _loop_thread(self) -> int | None:
        return getattr(self._loop, "_thread_id", None)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        raise StorageError("this process reads the store through the store worker: no writes")

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert into one of the BUS_WRITABLE tables, through the store worker."""
        if table not in BUS_WRITABLE:
            raise StorageError(
                f"this process reads the store through the store worker: it may insert only "
                f"into {sorted(BUS_WRITABLE)}, not {table!r}"
            )
        if not rows:
            return
        # The rows as both backends insert them (datetimes as UTC text without offset).
        wire = [json.loads(line) for line in encode_json_each_row(rows).split("\n")]
        request = StoreInsertRequested.model_validate({"table": table, "rows": wire})
        answer = self._request(subjects.STORE_INSERT, request.model_dump_json().encode())
        if (answer.headers or {}).get(REPLY_KIND_HEADER) == INSERTED:
            return
        failed = RequestFailed.model_validate_json(answer.data)
        raise StorageError(f"the store worker refused the insert ({failed.kind}): {failed.reason}")

    def close(self) -> None:
        """Nothing to release: the connection is the process's bus."""
