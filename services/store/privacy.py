"""rpc.store.forget and rpc.store.export: the store worker, the one writer of ClickHouse, runs
the erasure and access requests of `airparadis data` (shared/privacy.py) while the platform runs,
audits each, and after an erasure tells the gateways on privacy.erased to drop what they keep
in memory."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from shared import privacy, subjects
from shared.bus import describe_error
from shared.messages import (
    DataErased,
    ExportRequested,
    FailureKind,
    ForgetRequested,
    RequestFailed,
)
from shared.storage import Store

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)
VIA = "store worker"


async def serve_privacy(nc: Client, store: Store) -> list[Subscription]:
    """Answer erasure and access requests with `store` until unsubscribed. One request at a
    time: they are rare, and an erasure must not race another."""
    one_at_a_time = asyncio.Lock()

    async def forget(msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = ForgetRequested.model_validate_json(msg.data)
        except ValidationError as error:
            await _answer(nc, msg, _failed("invalid_request", describe_error(error)))
            return
        async with one_at_a_time:
            try:
                done = await asyncio.to_thread(
                    privacy.forget, store, request.selector, request.requested_by, VIA
                )
            except Exception as error:
                log.warning("erasure failed", extra={"reason": str(error)[:500]})
                await _answer(nc, msg, _failed("unavailable", str(error)[:2000]))
                return
        log.info(
            "data erased",
            extra={
                "audit_id": done.audit_id,
                "by": request.requested_by,
                "selector": request.selector.audited(),
                "predictions": done.predictions,
                "feedback": done.feedback,
                "alerts": done.alerts,
            },
        )
        await _answer(nc, msg, done)
        erased = DataErased(selector=request.selector)
        await nc.publish(subjects.PRIVACY_ERASED, erased.model_dump_json().encode())

    async def export(msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = ExportRequested.model_validate_json(msg.data)
        except ValidationError as error:
            await _answer(nc, msg, _failed("invalid_request", describe_error(error)))
            return
        async with one_at_a_time:
            try:
                exported = await asyncio.to_thread(
                    privacy.export, store, request.prediction_id, request.requested_by, VIA
                )
            except Exception as error:
                log.warning("export failed", extra={"reason": str(error)[:500]})
                await _answer(nc, msg, _failed("unavailable", str(error)[:2000]))
                return
        log.info(
            "data exported",
            extra={"audit_id": exported.audit_id, "by": request.requested_by},
        )
        data = exported.model_dump_json().encode()
        if len(data) > nc.max_payload:
            await _answer(
                nc, msg, _failed("too_large", f"{len(data):,} bytes: more than a message holds")
            )
            return
        await nc.publish(msg.reply, data)

    return [
        await nc.subscribe(subjects.STORE_FORGET, queue=subjects.STORE_QUEUE, cb=forget),
        await nc.subscribe(subjects.STORE_EXPORT, queue=subjects.STORE_QUEUE, cb=export),
    ]


def _failed(kind: FailureKind, reason: str) -> RequestFailed:
    return RequestFailed(kind=kind, reason=reason)


async def _answer(nc: Client, msg: Msg, answer: BaseModel) -> None:
    await nc.publish(msg.reply, answer.model_dump_json().encode())
