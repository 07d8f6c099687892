"""The bus contract: payload validation and the reasons given for bad input."""

from __future__ import annotations

import json

import pytest
from nats.aio.msg import Msg
from pydantic import ValidationError

from shared.bus import dead_letter_for, reason_for
from shared.messages import MAX_TWEET_CHARS, TweetSubmitted
from shared.settings import Settings


def raw(data: bytes, subject: str = "tweets.submitted") -> Msg:
    return Msg(_client=None, subject=subject, data=data, headers={"Nats-Msg-Id": "m1"})  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", " ", "\n\t", "a" * (MAX_TWEET_CHARS + 1)])
def test_tweet_text_must_be_non_blank_and_short_enough(text: str) -> None:
    with pytest.raises(ValidationError):
        TweetSubmitted(text=text)


def test_tweet_of_exactly_the_limit_is_accepted() -> None:
    assert TweetSubmitted(text="a" * MAX_TWEET_CHARS).text


def test_unknown_schema_version_is_rejected() -> None:
    with pytest.raises(ValidationError, match="schema_version"):
        TweetSubmitted.model_validate({"schema_version": 2, "text": "hi"})


def test_round_trip_keeps_every_field() -> None:
    tweet = TweetSubmitted(text="hello", source="crm", reply_to="_INBOX.x")
    assert TweetSubmitted.model_validate_json(tweet.model_dump_json()) == tweet


def test_reason_names_malformed_json_rather_than_the_validation_error() -> None:
    data = b'{"text": '
    with pytest.raises(ValidationError) as caught:
        TweetSubmitted.model_validate(data.decode())
    assert reason_for(raw(data), caught.value).startswith("malformed JSON")


def test_reason_names_bad_utf8() -> None:
    data = b'{"text": "\xff"}'
    with pytest.raises(ValidationError) as caught:
        TweetSubmitted.model_validate(data.decode("latin-1"))
    assert "UTF-8" in reason_for(raw(data), caught.value)


def test_reason_lists_the_failing_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        TweetSubmitted.model_validate({"text": ""})
    assert reason_for(raw(b'{"text": ""}'), caught.value) == (
        "invalid payload: text: Value error, text is empty or only whitespace"
    )


def test_dead_letter_keeps_undecodable_bytes_in_base64() -> None:
    letter = dead_letter_for(raw(b"\xff\xfe"), "bad", "preprocess")
    assert letter.payload_base64 == "//4="
    assert letter.headers == {"Nats-Msg-Id": "m1"}
    assert json.loads(letter.model_dump_json())["subject"] == "tweets.submitted"


def test_alert_recipients_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRPARADIS_ALERT_TO", "a@x.org, b@x.org")
    assert Settings().alert_to == ["a@x.org", "b@x.org"]
