"""tweets.scored, feedback.reported, alerts.raised -> ClickHouse (and, on models.promoted, the
champion's drift reference: services/store/references.py).

Each subject has its own durable pull consumer that hands over batches; a batch is acked only
once its rows are inserted, so a crash redelivers it, and the tables deduplicate by id so the
redelivery adds nothing. An invalid message is dead-lettered without holding up its batch;
while ClickHouse refuses inserts, batches are retried with back-off, never dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.nats import JStream, NatsBroker, NatsMessage, NatsRouter, PullSub
from pydantic import BaseModel

from services.store.references import copy_reference
from shared import subjects
from shared.bus import (
    RetryLater,
    Streams,
    durable_subscriber,
    valid_events,
    worker_router,
)
from shared.messages import AlertRaised, FeedbackReported, ModelPromoted, TweetScored
from shared.settings import Settings
from shared.storage import PredictionRepository

log = logging.getLogger(__name__)
EventT = TypeVar("EventT", bound=BaseModel)


async def insert_or_retry(
    save: Callable[[list[EventT]], Awaitable[None]], events: list[EventT]
) -> None:
    try:
        await save(events)
    except Exception as exc:  # ClickHouse down or refusing: keep the batch, try again later
        log.exception("insert failed", extra={"rows": len(events)})
        raise RetryLater(f"ClickHouse insert failed: {exc}") from exc


def build_router(
    broker: NatsBroker, settings: Settings, streams: Streams, repository: PredictionRepository
) -> NatsRouter:
    router = worker_router(broker, "store", settings)
    batch = PullSub(
        batch_size=settings.store_batch_size,
        timeout=settings.store_flush_ms / 1000.0,
        batch=True,
    )

    def batch_subscriber(
        subject: str, stream: JStream, durable: str
    ) -> Callable[[Callable[..., Any]], Any]:
        return durable_subscriber(router, subject, stream, durable, settings, batch)

    @batch_subscriber(subjects.TWEETS_SCORED, streams.tweets, subjects.DURABLE_STORE_PREDICTIONS)
    async def on_tweets_scored(msg: NatsMessage) -> None:
        if predictions := await valid_events(broker, msg.raw_message, TweetScored, "store"):
            await insert_or_retry(repository.save_predictions, predictions)

    @batch_subscriber(subjects.FEEDBACK_REPORTED, streams.feedback, subjects.DURABLE_STORE_FEEDBACK)
    async def on_feedback_reported(msg: NatsMessage) -> None:
        if reports := await valid_events(broker, msg.raw_message, FeedbackReported, "store"):
            await insert_or_retry(repository.save_feedback, reports)

    @batch_subscriber(subjects.ALERTS_RAISED, streams.alerts, subjects.DURABLE_STORE_ALERTS)
    async def on_alerts_raised(msg: NatsMessage) -> None:
        if alerts := await valid_events(broker, msg.raw_message, AlertRaised, "store"):
            await insert_or_retry(repository.save_alerts, alerts)

    @durable_subscriber(
        router,
        subjects.MODELS_PROMOTED,
        streams.models,
        subjects.DURABLE_STORE_REFERENCES,
        settings,
        PullSub(batch_size=1, timeout=1.0),
    )
    async def on_model_promoted(event: ModelPromoted) -> None:
        if event.model_name == settings.model_name and event.alias == "champion":
            await copy_reference(repository.store, settings, event.version)

    return router
