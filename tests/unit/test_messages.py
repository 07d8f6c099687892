"""The bus contract: payload validation and the reasons given for bad input."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.msg import Msg
from pydantic import ValidationError

from shared.bus import dead_letter_for, reason_for
from shared.messages import MAX_TWEET_CHARS, RefusalCount, RequestsRefused, TweetSubmitted
from shared.scrub import TextPolicy
from shared.settings import Settings


def raw(data: bytes, subject: str = "tweets.submitted") -> Msg:
    return Msg(_client=None, subject=subject, data=data, headers={"Nats-Msg-Id": "m1"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["", " ", "\n\t", "\u200b\ufeff", "\x00\x01", "a" * (MAX_TWEET_CHARS + 1)]
)
def test_tweet_text_must_be_non_blank_and_short_enough(text: str) -> None:
    with pytest.raises(ValidationError):
        TweetSubmitted(text=text)


def test_tweet_of_exactly_the_limit_is_accepted() -> None:
    assert TweetSubmitted(text="a" * MAX_TWEET_CHARS).text


def test_unknown_schema_version_is_rejected() -> None:
    with pytest.raises(ValidationError, match="schema_version"):
        TweetSubmitted.model_validate({"schema_version": 2, "text": "hi"})


def test_round_trip_keeps_every_field() -> None:
    tweet = TweetSubmitted(text="hello", source="crm", reply_to="_INBOX.airparadis.crm.x1")
    assert TweetSubmitted.model_validate_json(tweet.model_dump_json()) == tweet


def test_reason_names_malformed_json_rather_than_the_validation_error() -> None:
    data = b'{"text": '
    with pytest.raises(ValidationError) as caught:
        TweetSubmitted.model_validate_json(data)
    assert reason_for(raw(data), caught.value).startswith("malformed JSON")


def test_reason_names_bad_utf8() -> None:
    data = b'{"text": "\xff"}'
    with pytest.raises(ValidationError) as caught:
        TweetSubmitted.model_validate_json(data)
    assert "UTF-8" in reason_for(raw(data), caught.value)


def test_reason_lists_the_failing_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        TweetSubmitted.model_validate({"text": ""})
    assert reason_for(raw(b'{"text": ""}'), caught.value) == (
        "invalid payload: text: Value error, text is empty or has only whitespace, invisible "
        "characters and combining marks"
    )


@pytest.mark.parametrize("text", ["\u0301\u0301", "\u200b\u0301\u20dd", " \u036f\ufe20 "])
def test_combining_marks_with_nothing_to_combine_with_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="combining marks"):
        TweetSubmitted(text=text)
    assert TweetSubmitted(text="cafe\u0301").text == "cafe\u0301"  # an accent on a letter


AS_WRITTEN = TextPolicy("full")


def test_dead_letter_keeps_undecodable_bytes_in_base64_when_text_is_kept_as_written() -> None:
    letter = dead_letter_for(raw(b"\xff\xfe"), "bad", "preprocess", AS_WRITTEN)
    assert letter.payload_base64 == "//4="
    assert letter.headers == {"Nats-Msg-Id": "m1"}
    assert json.loads(letter.model_dump_json())["subject"] == "tweets.submitted"


def test_alert_recipients_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRPARADIS_ALERT_TO", "a@x.org, b@x.org")
    assert Settings().alert_to == ["a@x.org", "b@x.org"]


@pytest.mark.parametrize(
    "reply_to",
    ["tweets.scored", "_INBOX.airparadis", "_INBOX.airparadis.>", "_INBOX.other.x", "a b"],
)
def test_reply_to_must_stay_below_the_reply_prefix(reply_to: str) -> None:
    with pytest.raises(ValidationError, match="reply_to"):
        TweetSubmitted(text="hello", reply_to=reply_to)


@pytest.mark.parametrize("tweet_id", ["a b", "x\r\nNats-Msg-Id: y", "", "é", "a" * 65, "a*"])
def test_ids_are_safe_in_headers_and_subjects(tweet_id: str) -> None:
    with pytest.raises(ValidationError, match="id"):
        TweetSubmitted(id=tweet_id, text="hello")


def test_dead_letter_of_a_large_payload_is_cut_with_its_size_and_hash() -> None:
    data = b"\xff" * 250_000
    letter = dead_letter_for(raw(data), "bad", "preprocess", AS_WRITTEN, keep_bytes=8192)
    assert letter.truncated and letter.payload_bytes == 250_000
    assert letter.payload_sha256 == hashlib.sha256(data).hexdigest()
    assert letter.payload_base64 is not None and len(letter.payload_base64) < 11_000
    assert len(letter.model_dump_json()) < 50_000


def test_dead_letter_keeps_a_bounded_set_of_headers() -> None:
    message = raw(b"{}")
    message.headers = {f"h{i}": "v" * 10_000 for i in range(1000)}
    letter = dead_letter_for(message, "bad", "preprocess", AS_WRITTEN)
    assert len(letter.headers) == 32
    assert all(len(v) <= 256 for v in letter.headers.values())


def test_dead_letter_of_a_tweet_keeps_it_scrubbed_and_not_its_bytes_by_default() -> None:
    payload = b'{"text": "call me on +33 6 12 34 56 78 or jane@example.com \xff"}'
    letter = dead_letter_for(raw(payload), "bad", "preprocess", TextPolicy())
    assert "<phone>" in letter.payload and "<email>" in letter.payload
    assert "jane" not in letter.payload and letter.payload_base64 is None
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize(
    "count",
    [
        {"limit": "api", "who": "address", "key_name": "crm", "count": 1},  # names no key
        {"limit": "api", "who": "key", "key_name": "", "count": 1},  # a key has its name
        {"limit": "api", "who": "key", "key_name": "10.0.0.1 ", "count": 1},
        {"limit": "api", "who": "address", "count": 0},
        {"limit": "login", "who": "address", "count": 1},
    ],
)
def test_a_refusal_count_that_breaks_the_contract_is_refused(count: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RefusalCount.model_validate(count)


def test_a_refusal_summary_names_each_count_once_and_ends_after_it_starts() -> None:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    twice = [{"limit": "api", "who": "address", "count": 1}] * 2
    with pytest.raises(ValidationError, match="more than once"):
        RequestsRefused.model_validate(
            {"id": "gw-0", "gateway": "gw", "window_start": at, "window_end": at, "counts": twice}
        )
    with pytest.raises(ValidationError, match="before window_start"):
        RequestsRefused.model_validate(
            {
                "id": "gw-0",
                "gateway": "gw",
                "window_start": at,
                "window_end": at - timedelta(seconds=1),
                "counts": twice[:1],
            }
        )
