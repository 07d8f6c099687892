"""Handlers on the in-memory broker: the happy path and what happens to bad input."""

from __future__ import annotations

import json

from shared import subjects
from shared.messages import ModelPromoted, TweetSubmitted
from tests.component.conftest import Pipeline


async def test_submitted_tweet_is_scored_and_stored(pipeline: Pipeline) -> None:
    tweet = TweetSubmitted(text="I love flying with @AirParadis! https://x.co #great")
    await pipeline.publish(tweet.model_dump(mode="json"), subjects.TWEETS_SUBMITTED)

    stored = pipeline.repository.predictions[tweet.id]
    assert stored.label == "positive"
    assert stored.probability == 0.9
    assert stored.model_version == "1"
    assert stored.features.n_urls == 1
    assert stored.features.n_mentions == 1
    assert stored.features.n_hashtags == 1
    assert pipeline.dead_letters == []


async def test_negative_tweet_is_labelled_negative(pipeline: Pipeline) -> None:
    tweet = TweetSubmitted(text="Lost my bag again, six hours of delay.")
    await pipeline.publish(tweet.model_dump(mode="json"), subjects.TWEETS_SUBMITTED)
    assert pipeline.repository.predictions[tweet.id].label == "negative"


async def test_malformed_json_goes_to_dead_letter_with_reason(pipeline: Pipeline) -> None:
    await pipeline.publish(b'{"text": "unterminated', subjects.TWEETS_SUBMITTED)

    [letter] = pipeline.dead_letters
    assert letter.subject == subjects.TWEETS_SUBMITTED
    assert letter.worker == "preprocess"
    assert "invalid" in letter.reason.lower() or "json" in letter.reason.lower()
    assert letter.payload == '{"text": "unterminated'
    assert pipeline.repository.predictions == {}


async def test_unknown_schema_version_goes_to_dead_letter(pipeline: Pipeline) -> None:
    payload = {"schema_version": 99, "id": "t1", "text": "hello"}
    await pipeline.publish(payload, subjects.TWEETS_SUBMITTED)

    [letter] = pipeline.dead_letters
    assert "schema_version" in letter.reason
    assert json.loads(letter.payload) == payload


async def test_invalid_utf8_goes_to_dead_letter_with_original_bytes(pipeline: Pipeline) -> None:
    await pipeline.publish(b'{"text": "caf\xe9 \xff"}', subjects.TWEETS_SUBMITTED)

    [letter] = pipeline.dead_letters
    assert letter.payload_base64 is not None
    assert "utf-8" in letter.reason.lower() or "invalid" in letter.reason.lower()


async def test_empty_and_too_long_texts_are_dead_lettered(pipeline: Pipeline) -> None:
    await pipeline.publish({"id": "blank", "text": "   \n\t "}, subjects.TWEETS_SUBMITTED)
    await pipeline.publish({"id": "long", "text": "a" * 1001}, subjects.TWEETS_SUBMITTED)
    await pipeline.publish({"id": "ctrl", "text": "\x00\x01\x02"}, subjects.TWEETS_SUBMITTED)

    reasons = [letter.reason for letter in pipeline.dead_letters]
    assert len(reasons) == 3
    assert "empty" in reasons[0]
    assert "1000" in reasons[1]
    assert "empty" in reasons[2]
    assert pipeline.repository.predictions == {}


async def test_bad_message_does_not_stop_the_next_one(pipeline: Pipeline) -> None:
    await pipeline.publish(b"not json at all", subjects.TWEETS_SUBMITTED)
    tweet = TweetSubmitted(text="Great crew, thanks!")
    await pipeline.publish(tweet.model_dump(mode="json"), subjects.TWEETS_SUBMITTED)

    assert len(pipeline.dead_letters) == 1
    assert tweet.id in pipeline.repository.predictions


async def test_invalid_preprocessed_message_is_dead_lettered_by_infer(pipeline: Pipeline) -> None:
    await pipeline.publish({"id": "x"}, subjects.TWEETS_PREPROCESSED)

    [letter] = pipeline.dead_letters
    assert letter.worker == "infer"
    assert letter.subject == subjects.TWEETS_PREPROCESSED


async def test_promotion_swaps_the_model_for_later_tweets(pipeline: Pipeline) -> None:
    first = TweetSubmitted(text="Thanks for the great flight")
    await pipeline.publish(first.model_dump(mode="json"), subjects.TWEETS_SUBMITTED)

    promoted = ModelPromoted(model_name="airparadis-sentiment", version="2")
    await pipeline.publish(promoted.model_dump(mode="json"), subjects.MODELS_PROMOTED)
    second = TweetSubmitted(text="Thanks for the great flight")
    await pipeline.publish(second.model_dump(mode="json"), subjects.TWEETS_SUBMITTED)

    assert pipeline.repository.predictions[first.id].model_version == "1"
    scored = pipeline.repository.predictions[second.id]
    assert scored.model_version == "2"
    assert scored.threshold == 0.95
    assert scored.label == "negative"  # 0.9 is under the new model's threshold


async def test_promotion_of_another_model_name_is_ignored(pipeline: Pipeline) -> None:
    promoted = ModelPromoted(model_name="someone-else", version="2")
    await pipeline.publish(promoted.model_dump(mode="json"), subjects.MODELS_PROMOTED)
    assert pipeline.holder.require().version == "1"


async def test_store_failure_is_retried_not_lost(pipeline: Pipeline) -> None:
    pipeline.repository.fail_next = 1
    tweet = TweetSubmitted(text="Smooth boarding, good job")
    await pipeline.publish(tweet.model_dump(mode="json"), subjects.TWEETS_SUBMITTED)
    # The in-memory broker does not redeliver: the failed batch was nacked, not dead-lettered.
    assert pipeline.dead_letters == []
    assert tweet.id not in pipeline.repository.predictions
