"""tweets.submitted -> tweets.preprocessed.

The model-specific preprocessing runs inside the model (so training and serving can never
skew); this step does what every model needs: normalise the text, reject what normalises to
nothing, and extract the features that drift monitoring compares with the training data.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker, NatsRouter, PullSub

from shared import subjects
from shared.bus import (
    InvalidMessage,
    Streams,
    durable_subscriber,
    publish_event,
    worker_router,
)
from shared.messages import ScoringFailed, TweetPreprocessed, TweetSubmitted
from shared.preprocessing import normalize, text_features
from shared.settings import Settings

log = logging.getLogger(__name__)


def preprocess_tweet(tweet: TweetSubmitted) -> TweetPreprocessed:
    """The pure step: normalise and measure one tweet."""
    normalized = normalize(tweet.text)
    if not normalized:
        raise InvalidMessage("text is empty once control characters and whitespace are removed")
    return TweetPreprocessed(
        id=tweet.id,
        text=tweet.text,
        normalized_text=normalized,
        features=text_features(tweet.text),
        source=tweet.source,
        submitted_at=tweet.submitted_at,
        reply_to=tweet.reply_to,
    )


def build_router(broker: NatsBroker, settings: Settings, streams: Streams) -> NatsRouter:
    router = worker_router(broker, "preprocess", settings)

    @durable_subscriber(
        router,
        subjects.TWEETS_SUBMITTED,
        streams.tweets,
        subjects.DURABLE_PREPROCESS,
        settings,
        PullSub(batch_size=32, timeout=1.0),
    )
    async def on_tweet_submitted(tweet: TweetSubmitted) -> None:
        try:
            preprocessed = preprocess_tweet(tweet)
        except InvalidMessage as exc:
            if tweet.reply_to:  # a caller waits for an answer: tell it why, now
                await broker.publish(
                    ScoringFailed(id=tweet.id, reason=str(exc)).model_dump(mode="json"),
                    tweet.reply_to,
                )
            raise
        await publish_event(
            broker,
            preprocessed,
            subjects.TWEETS_PREPROCESSED,
            msg_id=f"preprocessed-{tweet.id}",
            stream=subjects.STREAM_TWEETS,
        )

    return router
