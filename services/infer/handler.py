"""tweets.preprocessed -> tweets.scored (and a direct reply to a waiting caller).

Messages are scored in micro-batches: FastStream's pull subscriber hands over up to
`batch_max_size` messages, or what arrived within `batch_max_wait_ms`. Each batch is scored
by whatever model is current when it starts; a models.promoted event loads the new version
beside the old one and swaps the reference between batches, so no message is lost or scored
twice while the model changes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage, NatsRouter, PullSub

from shared import subjects
from shared.bus import (
    RequestFailed,
    RetryLater,
    Streams,
    durable_subscriber,
    publish_event,
    valid_events,
    worker_router,
)
from shared.explain import occlusion
from shared.messages import (
    ExplainRequested,
    ExplanationReady,
    ModelPromoted,
    TweetPreprocessed,
    TweetScored,
    WordContribution,
)
from shared.models import LoadedModel
from shared.settings import Settings

log = logging.getLogger(__name__)

# Loads a registered version of the configured model; None means the `champion` alias.
ModelLoader = Callable[[str | None], LoadedModel]


class ModelNotReady(RetryLater):
    """No model is loaded yet: messages wait (retried, never dead-lettered)."""


@dataclass
class ModelHolder:
    """The model currently serving, swapped whole so a batch never sees half a change."""

    current: LoadedModel | None = None
    loaded_at: datetime | None = None
    swaps: int = field(default=0)

    def set(self, model: LoadedModel) -> None:
        self.current = model
        self.loaded_at = datetime.now(UTC)
        self.swaps += 1

    def require(self) -> LoadedModel:
        if self.current is None:
            raise ModelNotReady("no model loaded yet")
        return self.current


def score_batch(
    model: LoadedModel, tweets: Sequence[TweetPreprocessed], now: datetime | None = None
) -> list[TweetScored]:
    """Score tweets in one call of the model; the pure heart of the worker."""
    if not tweets:
        return []
    # The model applies its own recorded preprocessing to the raw text, as in training.
    scores = model.scores([t.text for t in tweets])
    oov_rates = (
        [None] * len(tweets)
        if scores.oov_rates is None
        else [None if math.isnan(rate) else float(rate) for rate in scores.oov_rates]
    )
    scored_at = now or datetime.now(UTC)
    return [
        TweetScored(
            id=t.id,
            text=t.text,
            features=t.features,
            source=t.source,
            label="positive" if float(p) >= model.threshold else "negative",
            probability=float(p),
            threshold=model.threshold,
            model_name=model.name,
            model_version=model.version,
            submitted_at=t.submitted_at,
            scored_at=scored_at,
            latency_ms=max((scored_at - t.submitted_at).total_seconds() * 1000.0, 0.0),
            batch_size=len(tweets),
            oov_rate=oov,
        )
        for t, p, oov in zip(tweets, scores.probabilities, oov_rates, strict=True)
    ]


def explain_tweet(model: LoadedModel, request: ExplainRequested) -> ExplanationReady:
    """Score the tweet and say which words pushed it, within the request's time budget."""
    started = time.perf_counter()
    budget_s = request.budget_ms / 1000.0
    if model.explain is not None:
        explanation = model.explain(request.text, budget_s)
    else:
        explanation = occlusion(request.text, model.predict_proba, budget_s)
    probability = float(model.predict_proba([request.text])[0])
    return ExplanationReady(
        probability=probability,
        label="positive" if probability >= model.threshold else "negative",
        threshold=model.threshold,
        model_name=model.name,
        model_version=model.version,
        method=explanation.method,
        complete=explanation.complete,
        words=[
            WordContribution(word=w.text, start=w.start, end=w.end, contribution=c)
            for w, c in zip(explanation.words, explanation.contributions, strict=True)
        ],
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
    )


def build_router(
    broker: NatsBroker,
    settings: Settings,
    streams: Streams,
    holder: ModelHolder,
    load_model: ModelLoader,
) -> NatsRouter:
    router = worker_router(broker, "infer", settings)

    @durable_subscriber(
        router,
        subjects.TWEETS_PREPROCESSED,
        streams.tweets,
        subjects.DURABLE_INFER,
        settings,
        PullSub(
            batch_size=settings.batch_max_size,
            timeout=settings.batch_max_wait_ms / 1000.0,
            batch=True,
        ),
    )
    async def on_tweets_preprocessed(msg: NatsMessage) -> None:
        model = holder.require()
        tweets = await valid_events(broker, msg.raw_message, TweetPreprocessed, "infer")
        if not tweets:
            return
        started = time.perf_counter()
        scored = await asyncio.to_thread(score_batch, model, tweets)
        log.debug(
            "scored batch",
            extra={"size": len(scored), "ms": (time.perf_counter() - started) * 1000},
        )
        await asyncio.gather(
            *(
                publish_event(
                    broker,
                    s,
                    subjects.TWEETS_SCORED,
                    msg_id=f"scored-{s.id}",
                    stream=subjects.STREAM_TWEETS,
                )
                for s in scored
            )
        )
        # The durable record is published; now answer callers that wait (best effort:
        # a caller that gave up simply has no listener on its subject).
        await asyncio.gather(
            *(
                broker.publish(s.model_dump(mode="json"), t.reply_to)
                for s, t in zip(scored, tweets, strict=True)
                if t.reply_to
            )
        )

    @router.subscriber(
        subjects.MODELS_PROMOTED,
        stream=streams.models,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_model_promoted(event: ModelPromoted) -> None:
        if event.model_name != settings.model_name or event.alias != "champion":
            return
        current = holder.current
        if current is not None and current.version == event.version:
            return
        model = await asyncio.to_thread(load_model, event.version)
        holder.set(model)
        log.info(
            "model swapped",
            extra={"model_name": model.name, "model_version": model.version},
        )

    @router.subscriber(subjects.EXPLAIN_REQUESTED, queue=subjects.INFER_QUEUE)
    async def on_explain_requested(request: ExplainRequested) -> dict[str, object]:
        model = holder.current
        if model is None:
            return RequestFailed(error="no model loaded yet").model_dump()
        answer = await asyncio.to_thread(explain_tweet, model, request)
        return answer.model_dump(mode="json")

    @router.subscriber(subjects.INFER_STATUS)
    async def on_status_request() -> dict[str, object]:
        model = holder.current
        return {
            "ready": model is not None,
            "model_name": model.name if model else None,
            "model_version": model.version if model else None,
            "threshold": model.threshold if model else None,
        }

    return router
