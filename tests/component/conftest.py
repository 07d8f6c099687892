"""The workers wired on FastStream's in-memory broker, with fakes for the model and storage,
and an in-process SMTP server catching the alert emails (never whatever listens on the default
port of the machine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from services.alerter import handler as alerter
from services.alerter.state import MemoryAlerterState
from services.gateway.alerts import AlertWatcher
from services.gateway.replies import ReplyWaiter
from services.infer import handler as infer
from services.preprocess import handler as preprocess
from services.store import handler as store
from shared.bus import Streams
from shared.messages import DeadLetter
from shared.models import LoadedModel
from shared.settings import Settings
from tests.fakes import MemoryRepository, keyword_model
from tests.servers import Inbox, smtp_server


@dataclass
class Pipeline:
    broker: NatsBroker
    holder: infer.ModelHolder
    repository: MemoryRepository
    alerter_state: MemoryAlerterState
    models: dict[str, LoadedModel]
    inbox: Inbox
    replies: ReplyWaiter = field(default_factory=ReplyWaiter)
    alerts: AlertWatcher = field(default_factory=AlertWatcher)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    clock: list[datetime] = field(default_factory=lambda: [datetime.now(UTC)])

    async def publish(self, payload: Any, subject: str) -> None:
        await self.broker.publish(payload, subject)


@pytest.fixture
async def pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    with smtp_server() as (smtp, inbox):
        settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port})
        async for p in _pipeline(settings, inbox):
            yield p


async def _pipeline(settings: Settings, inbox: Inbox) -> AsyncIterator[Pipeline]:
    broker = NatsBroker()
    streams = Streams(settings)
    models = {"1": keyword_model("1"), "2": keyword_model("2", threshold=0.95)}
    holder = infer.ModelHolder()
    holder.set(models["1"])
    p = Pipeline(broker, holder, MemoryRepository(), MemoryAlerterState(), models, inbox)
    broker.include_router(preprocess.build_router(broker, settings, streams))
    broker.include_router(
        infer.build_router(broker, settings, streams, holder, lambda v: models[v or "1"])
    )
    broker.include_router(store.build_router(broker, settings, streams, p.repository))  # type: ignore[arg-type]
    broker.include_router(
        alerter.build_router(broker, settings, streams, p.alerter_state, clock=lambda: p.clock[0])
    )

    p.replies.register(broker)
    p.alerts.register(broker, streams.alerts)

    @broker.subscriber("dlq.>", stream=streams.dlq)
    async def collect_dead_letter(letter: DeadLetter) -> None:
        p.dead_letters.append(letter)

    async with TestNatsBroker(broker):
        yield p
