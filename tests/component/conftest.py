"""The control side of infer on FastStream's in-memory broker (promotions, explanations,
status) and the gateway's alert watcher, with a fake model.

The durable consumers (preprocess, infer's scoring, the store, the alerter) are batch stages
on plain nats-py: their handlers are tested here and in tests/unit/ on their own, and run
against a real nats-server in tests/integration/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from services.gateway.alerts import AlertWatcher
from services.infer import handler as infer
from shared import subjects
from shared.bus import Streams
from shared.messages import AlertRaised, DeadLetter
from shared.models import LoadedModel
from shared.settings import Settings
from tests.fakes import keyword_model


@dataclass
class ControlPlane:
    broker: NatsBroker
    holder: infer.ModelHolder
    models: dict[str, LoadedModel]
    alerts: AlertWatcher = field(default_factory=AlertWatcher)
    raised: list[AlertRaised] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    async def publish(self, payload: Any, subject: str) -> None:
        await self.broker.publish(payload, subject)


@pytest.fixture
async def plane(settings: Settings) -> AsyncIterator[ControlPlane]:
    broker = NatsBroker()
    streams = Streams(settings)
    models = {"1": keyword_model("1"), "2": keyword_model("2", threshold=0.95)}
    holder = infer.ModelHolder()
    holder.set(models["1"])
    p = ControlPlane(broker, holder, models)
    broker.include_router(
        infer.build_router(broker, settings, streams, holder, lambda v: models[v or "1"])
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
