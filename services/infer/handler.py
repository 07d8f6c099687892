"""tweets.preprocessed -> tweets.scored (and a direct reply to a waiting caller), in batches.

The stage hands over what is waiting, up to `batch_max_size` tweets (or what arrives within
`batch_max_wait_ms` when that is above 0): a lone tweet is scored at once, batches grow when
traffic queues up. Each batch is scored in one call of whatever model is current when it
starts; a models.promoted event loads the new version beside the old one and swaps the
reference between batches, so no message is lost or scored twice while the model changes.
The answer to a waiting caller goes out once its scored tweet is stored in JetStream.

Shadow scoring: while a version holds the `challenger` alias, a second durable consumer of the
same tweets (`infer-shadow`, shared by the replicas) scores each one submitted since the alias
was set with it, in a worker thread, and publishes tweets.shadow_scored for the store; nothing
goes to the caller. Its own consumer keeps the champion's batches from waiting for it (README,
"Shadow scoring", has the measured cost). Taking the alias off stops it at the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from faststream import AckPolicy
from faststream.nats import DeliverPolicy, NatsBroker, NatsRouter

from shared import subjects
from shared.bus import RetryLater, Streams, worker_router
from shared.jetstream import Outcome, Outgoing, decode_batch
from shared.language import reliability
from shared.messages import (
    ExplainRequested,
    ExplanationReady,
    InferStatus,
    ModelPromoted,
    RequestFailed,
    ShadowScored,
    ThresholdSet,
    TweetPreprocessed,
    TweetScored,
    WordContribution,
)
from shared.models import LoadedModel
from shared.registry import CHALLENGER, CHAMPION
from shared.settings import Settings

if TYPE_CHECKING:
    from nats.aio.msg import Msg

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

    def set_threshold(self, event: ThresholdSet) -> bool:
        """Apply a models.threshold event to the version serving; False when it is about
        another version (or the threshold is the one in use already)."""
        current = self.current
        if current is None or current.version != event.model_version:
            return False
        if current.threshold_set == event.threshold:
            return False
        self.current = current.with_threshold(event.threshold)
        return True

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
    # Whether the model can read each tweet's language (the one preprocess detected).
    readable = [reliability(t.language, model.languages) for t in tweets]
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
            key_name=t.key_name,
            language=t.language,
            reliable=reliable,
            reliability_note=note,
        )
        for t, p, oov, (reliable, note) in zip(
            tweets, scores.probabilities, oov_rates, readable, strict=True
        )
    ]


@dataclass
class Challenger:
    """The version scored in shadow (None: no challenger), and since when: tweets submitted
    before the alias was set are not its to score."""

    model: LoadedModel | None = None
    since: datetime | None = None

    def set(self, model: LoadedModel, since: datetime) -> None:
        self.model, self.since = model, since
        log.info(
            "challenger set: scoring in shadow",
            extra={"model_version": model.version, "since": since.isoformat()},
        )

    def clear(self) -> None:
        if self.model is not None:
            log.info(
                "challenger removed: shadow scoring stops",
                extra={"model_version": self.model.version},
            )
        self.model, self.since = None, None


def shadow_batch(
    model: LoadedModel, tweets: Sequence[TweetPreprocessed], now: datetime | None = None
) -> list[ShadowScored]:
    """The challenger's scores of tweets, each at its own threshold (its version's)."""
    if not tweets:
        return []
    probabilities = model.predict_proba([t.text for t in tweets])
    scored_at = now or datetime.now(UTC)
    return [
        ShadowScored(
            id=f"{model.version}-{t.id}",
            prediction_id=t.id,
            model_name=model.name,
            model_version=model.version,
            label="positive" if float(p) >= model.threshold else "negative",
            probability=min(max(float(p), 0.0), 1.0),
            threshold=model.threshold,
            submitted_at=t.submitted_at,
            scored_at=scored_at,
        )
        for t, p in zip(tweets, probabilities, strict=True)
    ]


class ShadowHandler:
    """Scores a batch of preprocessed tweets with the challenger, if there is one; without one
    the batch is acknowledged untouched."""

    def __init__(self, challenger: Challenger, champion: ModelHolder, max_bytes: int) -> None:
        self.challenger = challenger
        self.champion = champion
        self.max_bytes = max_bytes

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        model, since = self.challenger.model, self.challenger.since
        champion = self.champion.current
        if model is None or (champion is not None and champion.version == model.version):
            return Outcome()  # no challenger, or it became the champion: nothing to compare
        events, rejected = decode_batch(batch, TweetPreprocessed, self.max_bytes)
        outcome = Outcome(rejected=rejected)
        chosen = [(i, t) for i, t in events if since is None or t.submitted_at >= since]
        # In a worker thread: the champion's batches go on while the challenger scores.
        scored = await asyncio.to_thread(shadow_batch, model, [t for _, t in chosen])
        for (index, tweet), result in zip(chosen, scored, strict=True):
            outcome.outputs.append(
                Outgoing(
                    subjects.TWEETS_SHADOW_SCORED,
                    result.model_dump_json().encode(),
                    f"shadow-{result.model_version}-{tweet.id}",
                    index,
                )
            )
        return outcome


def explain_tweet(model: LoadedModel, request: ExplainRequested) -> ExplanationReady:
    """Score the tweet and say which words pushed it, within the request's time budget."""
    started = time.perf_counter()
    budget_s = request.budget_ms / 1000.0
    explanation = model.explain(request.text, budget_s)
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


class InferHandler:
    """Scores a batch of preprocessed tweets with the current model."""

    def __init__(self, holder: ModelHolder, max_bytes: int) -> None:
        self.holder = holder
        self.max_bytes = max_bytes

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        model = self.holder.require()
        events, rejected = decode_batch(batch, TweetPreprocessed, self.max_bytes)
        outcome = Outcome(rejected=rejected)
        if not events:
            return outcome
        # Scored on the loop: in this process nothing else waits for it, and a thread hop
        # per batch would cost more than a small batch takes.
        scored = score_batch(model, [tweet for _, tweet in events])
        for (index, tweet), result in zip(events, scored, strict=True):
            payload = result.model_dump_json().encode()
            outcome.outputs.append(
                Outgoing(subjects.TWEETS_SCORED, payload, f"scored-{tweet.id}", index)
            )
            if tweet.reply_to:
                outcome.replies.append((index, tweet.reply_to, payload))
        return outcome


def build_router(
    broker: NatsBroker,
    settings: Settings,
    streams: Streams,
    holder: ModelHolder,
    load_model: ModelLoader,
    challenger: Challenger | None = None,
) -> NatsRouter:
    """The control side of infer: promotions, explanations and status, on FastStream."""
    router = worker_router(broker, "infer", settings)
    shadow = challenger if challenger is not None else Challenger()

    @router.subscriber(
        subjects.MODELS_PROMOTED,
        stream=streams.models,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_model_promoted(event: ModelPromoted) -> None:
        if event.model_name != settings.model_name:
            return
        if event.alias == CHALLENGER:
            await follow_alias_event(shadow, load_model, event)
        elif event.alias == CHAMPION and not event.removed:
            await swap_to(holder, load_model, event.version)

    # The last threshold set at start (a restart keeps the adaptive threshold), then each new
    # one; applied between batches, as a swap is.
    @router.subscriber(
        subjects.MODELS_THRESHOLD,
        stream=streams.models,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_threshold_set(event: ThresholdSet) -> None:
        if event.model_name != settings.model_name or not holder.set_threshold(event):
            return
        model = holder.require()
        log.info(
            "threshold set",
            extra={
                "model_version": model.version,
                "threshold": model.threshold,
                "mode": event.mode,
                "reason": event.reason,
            },
        )

    @router.subscriber(subjects.EXPLAIN_REQUESTED, queue=subjects.INFER_QUEUE)
    async def on_explain_requested(request: ExplainRequested) -> dict[str, object]:
        model = holder.current
        if model is None:
            failed = RequestFailed(kind="model_not_ready", reason="no model loaded yet")
            return failed.model_dump(mode="json")
        answer = await asyncio.to_thread(explain_tweet, model, request)
        return answer.model_dump(mode="json")

    @router.subscriber(subjects.INFER_STATUS)
    async def on_status_request() -> dict[str, object]:
        model = holder.current
        return InferStatus(
            ready=model is not None,
            model_name=model.name if model else None,
            model_version=model.version if model else None,
            threshold=model.threshold if model else None,
        ).model_dump(mode="json")

    return router


async def swap_to(holder: ModelHolder, load_model: ModelLoader, version: str | None) -> bool:
    """Load a version (None: the champion) beside the current one and swap; False when it is
    the one serving already."""
    current = holder.current
    if current is not None and version is not None and current.version == version:
        return False
    model = await asyncio.to_thread(load_model, version)
    if current is not None and model.version == current.version:
        return False
    holder.set(model)
    log.info("model swapped", extra={"model_name": model.name, "model_version": model.version})
    return True


async def follow_alias_event(
    challenger: Challenger, load_model: ModelLoader, event: ModelPromoted
) -> None:
    """A challenger set (loaded, then scored in shadow from the event's time) or removed."""
    if event.removed:
        current = challenger.model
        if current is None or current.version == event.version:
            challenger.clear()
        return
    current = challenger.model
    if current is not None and current.version == event.version:
        return
    model = await asyncio.to_thread(load_model, event.version)
    challenger.set(model, event.promoted_at)


async def follow_challenger(
    challenger: Challenger,
    load_model: ModelLoader,
    challenger_version: Callable[[], str | None],
    every_s: float,
) -> None:
    """At start and now and then: the registry's challenger, loaded or cleared (the backstop
    for an event missed while the bus was down). A challenger found at start is scored in
    shadow from then on."""
    while True:
        try:
            version = await asyncio.to_thread(challenger_version)
            current = challenger.model
            if version is None:
                challenger.clear()
            elif current is None or current.version != version:
                model = await asyncio.to_thread(load_model, version)
                challenger.set(model, datetime.now(UTC))
        except Exception as error:
            log.warning("could not check the challenger", extra={"reason": str(error)})
        await asyncio.sleep(every_s)


async def follow_champion(
    holder: ModelHolder,
    load_model: ModelLoader,
    champion_version: Callable[[], str | None],
    every_s: float,
) -> None:
    """Backstop for a models.promoted event missed while the bus was down: ask the registry
    for the champion now and then, and swap when it changed."""
    while True:
        await asyncio.sleep(every_s)
        try:
            version = await asyncio.to_thread(champion_version)
            if version is not None:
                await swap_to(holder, load_model, version)
        except Exception as error:
            log.warning("could not check the champion", extra={"reason": str(error)})
