"""Tells running workers about a promotion by publishing models.promoted on NATS."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

from shared import subjects
from shared.bus import make_broker, publish_event
from shared.messages import ModelPromoted
from shared.nats_server import port_open
from shared.settings import Settings


def nats_url_to_announce(settings: Settings) -> str | None:
    """The configured NATS URL, else the embedded server's if one is listening."""
    if settings.nats_url:
        return settings.nats_url
    url = f"nats://127.0.0.1:{settings.nats_port}"
    parsed = urlparse(url)
    return url if port_open(parsed.hostname or "127.0.0.1", parsed.port or 4222) else None


async def publish_promotion(settings: Settings, url: str, event: ModelPromoted) -> None:
    broker = make_broker(settings, servers=url)
    await broker.connect()
    try:
        await publish_event(
            broker,
            event,
            subjects.MODELS_PROMOTED,
            msg_id=f"promoted-{event.model_name}-{event.version}-{event.promoted_at.timestamp()}",
            stream=subjects.STREAM_MODELS,
        )
    finally:
        await broker.stop()


def announce_promotion(settings: Settings, version: str) -> str | None:
    """Publish models.promoted; returns where, or None when no NATS server is reachable."""
    url = nats_url_to_announce(settings)
    if url is None:
        return None
    event = ModelPromoted(model_name=settings.model_name, version=version)
    asyncio.run(publish_promotion(settings, url, event))
    return url
