"""The control side of the workers on FastStream's in-memory broker: infer's promotions,
explanations and status, the alerter's window and mailer, the gateway's alert watcher. A
fake model, an in-memory alerter state, and an in-process SMTP server catching the emails
(never whatever listens on the default port of the machine).

The hot path (preprocess, infer's scoring, the store) runs on plain nats-py: its handlers are
unit-tested (tests/unit/test_stage_handlers.py) and run against a real nats-server in
tests/integration/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from services.alerter import handler as alerter
from services.gateway.alerts import AlertWatcher
from services.infer import handler as infer
from shared import subjects
from shared.bus import Streams
from shared.messages import AlertRaised, DeadLetter
from shared.models import LoadedModel
from shared.settings import Settings
from tests.fakes import MemoryAlerterState, keyword_model
from tests.servers import Inbox, smtp_server


@dataclass
class ControlPlane:
    broker: NatsBroker
    holder: infer.ModelHolder
    alerter_state: MemoryAlerterState
    models: dict[str, LoadedModel]
    inbox: Inbox
    alerts: AlertWatcher = field(default_factory=AlertWatcher)
    raised: list[AlertRaised] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    clock: list[datetime] = field(default_factory=lambda: [datetime.now(UTC)])

    async def publish(self, payload: Any, subject: str) -> None:
        await self.broker.publish(payload, subject)


@pytest.fixture
async def plane(settings: Settings) -> AsyncIterator[ControlPlane]:
    with smtp_server() as (smtp, inbox):
        settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port})
        broker = NatsBroker()
        streams = Streams(settings)
        models = {"1": keyword_model("1"), "2": keyword_model("2", threshold=0.95)}
        holder = infer.ModelHolder()
        holder.set(models["1"])
        p = ControlPlane(broker, holder, MemoryAlerterState(), models, inbox)
        broker.include_router(
            infer.build_router(broker, settings, streams, holder, lambda v: models[v or "1"])
        )
        broker.include_router(
            alerter.build_router(
                broker, settings, streams, p.alerter_state, clock=lambda: p.clock[0]
            )
        )
        p.alerts.register(broker, streams.alerts)

        @broker.subscriber(subjects.ALERTS_RAISED, stream=streams.alerts)
        async def collect_alert(alert: AlertRaised) -> None:
            p.raised.append(alert)

        @broker.subscriber("dlq.>", stream=streams.dlq)
        async def collect_dead_letter(letter: DeadLetter) -> None:
            p.dead_letters.append(letter)

        async with TestNatsBroker(broker):
            yield p
