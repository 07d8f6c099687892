"""tweets.scored, tweets.shadow_scored, feedback.reported, alerts.raised, models.threshold,
gateway.refused -> ClickHouse, a batch per insert (and, on models.promoted, the champion's drift
reference and the champion's and challenger's operating curves: services/store/references.py).

Text is written as the `text_storage` setting keeps it (shared/scrub.py): the store is the last
guard, whatever an upstream app published. Each subject has its own durable consumer. A batch
is acked only once its rows are inserted, so a crash redelivers it; a redelivered event finds
its id stored with the same content and adds nothing, while an id re-published with other
content is refused (dead-lettered with the reason), never overwriting what is stored. While
ClickHouse refuses inserts the batch is held and retried with back-off, never dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from services.store.references import ReferenceCopier
from shared import subjects
from shared.bus import RetryLater
from shared.jetstream import Outcome, decode_batch
from shared.messages import (
    MAX_REFUSAL_COUNTS,
    AlertRaised,
    FeedbackReported,
    RequestsRefused,
    ShadowScored,
    ThresholdSet,
    TweetScored,
)
from shared.settings import Settings
from shared.storage import (
    PredictionRepository,
    Table,
    alert_row,
    feedback_row,
    prediction_row,
    refusal_counts,
    refusal_rows,
    shadow_row,
    threshold_row,
)

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)
EventT = TypeVar("EventT", bound=BaseModel)
WORKER = "store"
# A refusals summary holds at most MAX_REFUSAL_COUNTS counts of about 130 bytes each: whatever
# max_message_kb says of tweets, a valid one is never too large.
MAX_SUMMARY_BYTES = MAX_REFUSAL_COUNTS * 512


class StoreHandler(Generic[EventT]):
    """Decodes a batch of one kind of event and inserts the rows of the new ones."""

    def __init__(
        self,
        repository: PredictionRepository,
        table: Table,
        event: type[EventT],
        row: Callable[[EventT], dict[str, Any]],
        max_bytes: int,
    ) -> None:
        self.repository = repository
        self.table = table
        self.event = event
        self.row = row
        self.max_bytes = max_bytes

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        events, rejected = decode_batch(batch, self.event, self.max_bytes)
        outcome = Outcome(rejected=rejected)
        if not events:
            return outcome
        rows = [self.row(event) for _, event in events]
        try:
            sorted_rows = await self.repository.sort_new(self.table, rows)
            await self.repository.insert(self.table, [rows[i] for i in sorted_rows.new])
        except Exception as error:  # ClickHouse down or refusing: keep the batch, try again
            raise RetryLater(f"ClickHouse did not take the {self.table}: {error}") from error
        for position, reason in sorted_rows.conflicts.items():
            outcome.rejected[events[position][0]] = reason
        return outcome


class RefusalStore:
    """gateway.refused -> refusals: the rows of each summary not stored yet. A summary is several
    rows under one id, so it is compared whole: stored with the same counts, it adds nothing (a
    redelivery, a gateway's retry); with other counts, it is refused."""

    def __init__(self, repository: PredictionRepository) -> None:
        self.repository = repository

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        events, rejected = decode_batch(batch, RequestsRefused, MAX_SUMMARY_BYTES)
        outcome = Outcome(rejected=rejected)
        if not events:
            return outcome
        try:
            stored = await self.repository.stored_refusals([event.id for _, event in events])
        except Exception as error:
            raise RetryLater(f"ClickHouse did not answer for the refusals: {error}") from error
        new_rows: list[dict[str, Any]] = []
        for index, event in events:
            rows = refusal_rows(event)
            counts = refusal_counts(rows)
            known = stored.get(event.id)
            if known is None:
                stored[event.id] = counts  # the same summary twice in a batch: stored once
                new_rows += rows
            elif known != counts:
                outcome.rejected[index] = (
                    f"id {event.id!r} is already stored in refusals with other counts; an id "
                    "names one window of one gateway for good"
                )
        try:
            await self.repository.insert("refusals", new_rows)
        except Exception as error:
            raise RetryLater(f"ClickHouse did not take the refusals: {error}") from error
        return outcome


def handlers(repository: PredictionRepository, settings: Settings) -> dict[str, Any]:
    """The store's batch handler for each durable consumer."""
    max_bytes = settings.max_message_kb * 1024
    policy = repository.policy
    return {
        subjects.DURABLE_STORE_REFERENCES: ReferenceCopier(repository.store, settings),
        subjects.DURABLE_STORE_PREDICTIONS: StoreHandler(
            repository,
            "predictions",
            TweetScored,
            partial(prediction_row, policy=policy),
            max_bytes,
        ),
        subjects.DURABLE_STORE_FEEDBACK: StoreHandler(
            repository,
            "feedback",
            FeedbackReported,
            partial(feedback_row, policy=policy),
            max_bytes,
        ),
        subjects.DURABLE_STORE_ALERTS: StoreHandler(
            repository, "alerts", AlertRaised, partial(alert_row, policy=policy), max_bytes
        ),
        subjects.DURABLE_STORE_THRESHOLDS: StoreHandler(
            repository, "thresholds", ThresholdSet, threshold_row, max_bytes
        ),
        subjects.DURABLE_STORE_SHADOW: StoreHandler(
            repository, "shadow_predictions", ShadowScored, shadow_row, max_bytes
        ),
        subjects.DURABLE_STORE_REFUSALS: RefusalStore(repository),
    }
