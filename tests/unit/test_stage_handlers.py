"""The batch handlers of the hot path as pure functions of a batch of raw messages: every
input ends as an output or a rejection with a reason, whatever its bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from services.infer.handler import (
    Challenger,
    InferHandler,
    ModelHolder,
    ModelNotReady,
    ShadowHandler,
)
from services.preprocess.handler import PreprocessHandler
from shared import subjects
from shared.jetstream import Outcome
from shared.messages import (
    ScoringFailed,
    ShadowScored,
    TweetPreprocessed,
    TweetScored,
    TweetSubmitted,
)
from shared.preprocessing import text_features
from shared.scrub import TextPolicy
from tests.fakes import keyword_model
from tests.strategies import payloads

MAX_BYTES = 64 * 1024


def raw(payload: Any, subject: str = subjects.TWEETS_SUBMITTED) -> Msg:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Msg(_client=None, subject=subject, data=data, headers={})  # type: ignore[arg-type]


def preprocessed(text: str, reply_to: str | None = None, tweet_id: str = "t1") -> Msg:
    tweet = TweetPreprocessed(
        id=tweet_id,
        text=text,
        features=text_features(text),
        source="test",
        submitted_at=TweetSubmitted(text=text).submitted_at,
        reply_to=reply_to,
    )
    return raw(tweet.model_dump_json().encode(), subjects.TWEETS_PREPROCESSED)


async def run(handler: Any, batch: list[Msg]) -> Outcome:
    outcome: Outcome = await handler(batch)
    return outcome


def settled_once(outcome: Outcome, size: int) -> None:
    """Each input has exactly one fate: an output, a rejection or a failure."""
    produced = {o.source for o in outcome.outputs}
    assert produced.isdisjoint(outcome.rejected)
    assert produced | set(outcome.rejected) | set(outcome.failed) == set(range(size))
    assert all(reason for reason in outcome.rejected.values())


async def test_preprocess_turns_a_tweet_into_its_features_under_a_derived_id() -> None:
    tweet = TweetSubmitted(id="t1", text="Loved @AirParadis! https://x.co #great", source="crm")
    outcome = await run(
        PreprocessHandler(MAX_BYTES, TextPolicy()), [raw(tweet.model_dump(mode="json"))]
    )
    [out] = outcome.outputs
    assert out.subject == subjects.TWEETS_PREPROCESSED and out.msg_id == "preprocessed-t1"
    result = TweetPreprocessed.model_validate_json(out.payload)
    assert (result.features.n_mentions, result.features.n_urls, result.features.n_hashtags) == (
        1,
        1,
        1,
    )
    assert result.source == "crm" and outcome.rejected == {}


@pytest.mark.parametrize(
    ("storage", "passed_on"),
    [
        ("scrubbed", "<handle> call me on <phone>, @AirParadis"),
        ("none", "<handle> call me on <phone>, @AirParadis"),  # the model still reads it
        ("full", "@bob call me on +33 6 12 34 56 78, @AirParadis"),
    ],
)
async def test_preprocess_passes_on_the_text_of_an_upstream_app_minimised(
    storage: str, passed_on: str
) -> None:
    tweet = TweetSubmitted(id="t1", text="@bob call me on +33 6 12 34 56 78, @AirParadis")
    handler = PreprocessHandler(MAX_BYTES, TextPolicy(storage))  # type: ignore[arg-type]
    outcome = await run(handler, [raw(tweet.model_dump(mode="json"))])
    [out] = outcome.outputs
    result = TweetPreprocessed.model_validate_json(out.payload)
    assert result.text == passed_on
    assert result.features.n_mentions == 2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"text": "unterminated', "malformed JSON"),
        (b'{"text": "caf\xe9 \xff"}', "not valid UTF-8"),
        ({"schema_version": 99, "text": "hello"}, "schema_version"),
        ({"text": "   \n\t "}, "empty"),
        ({"text": "\x00\x01\x02"}, "empty"),
        ({"text": "a" * 1001}, "1000"),
        ({"text": "hi", "reply_to": "tweets.scored"}, "reply_to"),
        ({"text": "hi", "id": "a\r\nb"}, "id"),
        (b"[" * 5000 + b"]" * 5000, "recursion limit"),
        (b"x" * (MAX_BYTES + 1), "limit"),
    ],
    ids=[
        "malformed",
        "utf8",
        "version",
        "blank",
        "control",
        "long",
        "foreign-reply",
        "header-injection",
        "deep",
        "oversized",
    ],
)
async def test_bad_submissions_are_rejected_with_a_reason(payload: Any, reason: str) -> None:
    good = TweetSubmitted(text="Great crew, thanks!")
    outcome = await run(
        PreprocessHandler(MAX_BYTES, TextPolicy()),
        [raw(payload), raw(good.model_dump(mode="json"))],
    )
    assert reason in outcome.rejected[0]
    assert [o.source for o in outcome.outputs] == [1]  # the neighbour goes through


async def test_a_caller_waiting_on_an_unscorable_tweet_is_answered_at_once() -> None:
    tweet = TweetSubmitted(text="&#8203;", reply_to="_INBOX.airparadis.gw.t1")
    outcome = await run(
        PreprocessHandler(MAX_BYTES, TextPolicy()), [raw(tweet.model_dump(mode="json"))]
    )
    assert "empty" in outcome.rejected[0]
    [(source, subject, payload)] = outcome.replies
    assert (source, subject) == (0, "_INBOX.airparadis.gw.t1")
    assert "empty" in ScoringFailed.model_validate_json(payload).reason


async def test_infer_scores_a_batch_in_order_and_answers_only_waiting_callers() -> None:
    holder = ModelHolder()
    holder.set(keyword_model("3"))
    batch = [
        preprocessed("great crew", reply_to="_INBOX.airparadis.gw.a", tweet_id="a"),
        preprocessed("lost my bag", tweet_id="b"),
        raw(b"{}", subjects.TWEETS_PREPROCESSED),
    ]
    outcome = await run(InferHandler(holder, MAX_BYTES), batch)
    scored = [TweetScored.model_validate_json(o.payload) for o in outcome.outputs]
    assert [(s.id, s.label, s.model_version, s.batch_size) for s in scored] == [
        ("a", "positive", "3", 2),
        ("b", "negative", "3", 2),
    ]
    assert [o.msg_id for o in outcome.outputs] == ["scored-a", "scored-b"]
    assert [(i, s) for i, s, _ in outcome.replies] == [(0, "_INBOX.airparadis.gw.a")]
    assert set(outcome.rejected) == {2}


async def test_infer_without_a_model_holds_the_batch() -> None:
    with pytest.raises(ModelNotReady):
        await run(InferHandler(ModelHolder(), MAX_BYTES), [preprocessed("hello")])


PAYLOADS = payloads(
    set(TweetSubmitted.model_fields) | set(TweetPreprocessed.model_fields) | {"schema_version"}
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PAYLOADS, min_size=1, max_size=8))
async def test_any_bytes_on_tweets_submitted_end_as_output_or_reason(batch: list[bytes]) -> None:
    messages = [raw(p) for p in batch]
    settled_once(await run(PreprocessHandler(MAX_BYTES, TextPolicy()), messages), len(messages))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PAYLOADS, min_size=1, max_size=8))
async def test_any_bytes_on_tweets_preprocessed_end_as_output_or_reason(
    batch: list[bytes],
) -> None:
    holder = ModelHolder()
    holder.set(keyword_model())
    messages = [raw(p, subjects.TWEETS_PREPROCESSED) for p in batch]
    settled_once(await run(InferHandler(holder, MAX_BYTES), messages), len(messages))


# --- Shadow scoring (ShadowHandler): the challenger's scores, never an answer ---


async def test_without_a_challenger_the_shadow_stage_acks_everything_untouched() -> None:
    champion = ModelHolder()
    champion.set(keyword_model("3"))
    outcome = await run(ShadowHandler(Challenger(), champion, MAX_BYTES), [preprocessed("hi")])
    assert outcome == Outcome()


async def test_the_challenger_scores_only_tweets_submitted_since_it_was_set() -> None:
    champion = ModelHolder()
    champion.set(keyword_model("3"))
    old = preprocessed("great crew", tweet_id="old")
    challenger = Challenger()
    challenger.set(keyword_model("4"), datetime.now(UTC))
    new = preprocessed("lost my bag", reply_to="_INBOX.airparadis.gw.a", tweet_id="new")
    batch = [old, new, raw(b"{}", subjects.TWEETS_PREPROCESSED)]
    outcome = await run(ShadowHandler(challenger, champion, MAX_BYTES), batch)
    shadow = [ShadowScored.model_validate_json(o.payload) for o in outcome.outputs]
    assert [(s.prediction_id, s.model_version, s.label) for s in shadow] == [
        ("new", "4", "negative")
    ]
    assert [(o.subject, o.msg_id, o.source) for o in outcome.outputs] == [
        (subjects.TWEETS_SHADOW_SCORED, "shadow-4-new", 1)
    ]
    assert outcome.replies == []  # a waiting caller never gets the challenger's answer
    assert set(outcome.rejected) == {2}


async def test_a_challenger_that_became_the_champion_is_not_scored_twice() -> None:
    champion = ModelHolder()
    champion.set(keyword_model("4"))
    challenger = Challenger()
    challenger.set(keyword_model("4"), datetime(2020, 1, 1, tzinfo=UTC))
    outcome = await run(ShadowHandler(challenger, champion, MAX_BYTES), [preprocessed("hi")])
    assert outcome == Outcome()
