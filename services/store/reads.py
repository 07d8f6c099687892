"""rpc.store.query: the store worker answers the read-only queries of the processes that cannot
open the chDB folder it owns (gateway, alerter checks), from a read-only connection.

rpc.store.insert: it also inserts, for them, rows into the few tables they may write
(store_reads.BUS_WRITABLE: the API keys, written by `airparadis keys` and /v1/keys)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError

from shared import subjects
from shared.bus import describe_error
from shared.messages import FailureKind, RequestFailed, StoreInsertRequested, StoreQueryRequested
from shared.storage import ChdbStore
from shared.store_reads import BUS_WRITABLE, INSERTED, REPLY_KIND_HEADER, ROWS

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

# Queries answered at once (each in a thread): a slow monitor query does not hold up a
# feedback's lookup of its prediction.
CONCURRENT_QUERIES = 4


async def serve_reads(nc: Client, reader: ChdbStore, writer: ChdbStore) -> list[Subscription]:
    """Answer rpc.store.query with `reader` (opened read-only) and rpc.store.insert with
    `writer`, until unsubscribed."""
    slots = asyncio.Semaphore(CONCURRENT_QUERIES)
    tasks: set[asyncio.Task[None]] = set()

    async def query(msg: Msg) -> None:
        try:
            request = StoreQueryRequested.model_validate_json(msg.data)
        except ValidationError as error:
            await _fail(nc, msg, "invalid_request", describe_error(error))
            return
        try:
            data = await asyncio.to_thread(reader.query_arrow, request.sql, request.parameters)
        except Exception as error:
            log.warning("store read failed", extra={"reason": str(error)[:500]})
            await _fail(nc, msg, "invalid_request", str(error)[:2000])
            return
        if len(data) > nc.max_payload:
            await _fail(nc, msg, "too_large", f"{len(data):,} bytes of rows: narrow the query")
            return
        await nc.publish(msg.reply, data, headers={REPLY_KIND_HEADER: ROWS})

    async def insert(msg: Msg) -> None:
        try:
            request = StoreInsertRequested.model_validate_json(msg.data)
        except ValidationError as error:
            await _fail(nc, msg, "invalid_request", describe_error(error))
            return
        assert request.table in BUS_WRITABLE  # the message type allows no other table
        try:
            await asyncio.to_thread(writer.insert, request.table, request.rows)
        except Exception as error:
            log.warning(
                "insert for another process failed",
                extra={"table": request.table, "reason": str(error)[:500]},
            )
            await _fail(nc, msg, "unavailable", str(error)[:2000])
            return
        log.info("rows inserted for another process", extra={"table": request.table})
        await nc.publish(msg.reply, b"", headers={REPLY_KIND_HEADER: INSERTED})

    def serving(answer: Callable[[Msg], Awaitable[None]]) -> Callable[[Msg], Awaitable[None]]:
        async def on_request(msg: Msg) -> None:
            if not msg.reply:
                return

            async def in_a_slot() -> None:
                async with slots:
                    await answer(msg)

            task = asyncio.create_task(in_a_slot())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        return on_request

    return [
        await nc.subscribe(subjects.STORE_QUERY, queue=subjects.STORE_QUEUE, cb=serving(query)),
        await nc.subscribe(subjects.STORE_INSERT, queue=subjects.STORE_QUEUE, cb=serving(insert)),
    ]


async def _fail(nc: Client, msg: Msg, kind: FailureKind, reason: str) -> None:
    failed = RequestFailed(kind=kind, reason=reason)
    await nc.publish(msg.reply, failed.model_dump_json().encode())
