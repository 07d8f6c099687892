"""shared/language.py: what a detector is asked, what it answers, and what the answer means for a
verdict. The detector's accuracy on the committed fixture is in test_language_fixture.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.alerter.checks import language_shift_alert
from services.alerter.email import render_summary
from services.alerter.window import report_summary
from services.infer.handler import score_batch
from services.preprocess.handler import preprocess_tweet
from shared.language import LanguageDetector, detectable_text, reliability
from shared.messages import (
    AlertRaised,
    FeedbackReported,
    LanguageGuess,
    PredictionSnapshot,
    TweetSubmitted,
)
from shared.models import LoadedModel
from shared.scrub import TextPolicy
from tests.fakes import KeywordModel

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
FRENCH = LanguageGuess(code="fr", confidence=0.99, status="detected")


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    detector = LanguageDetector()
    detector.load()
    return detector


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("@AirParadis vol annulé https://t.co/x1 #colère 😡 AP214", "vol annulé colère AP"),
        ("<handle> merci pour <email> et <phone>", "merci pour et"),
        ("Lost my bag &amp; my patience!!! 3rd time", "Lost my bag my patience!!! rd time"),
        ("WORST AIRLINE EVER!!!", "worst airline ever!!!"),
        ("l\u2019équipage était top", "l\u2019équipage était top"),
    ],
)
def test_what_the_detector_reads_is_the_words_only(text: str, words: str) -> None:
    assert detectable_text(text) == words


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Vol annulé encore une fois, service client injoignable", "fr"),
        ("Lost my luggage again and nobody answers the phone", "en"),
        ("Vuelo cancelado otra vez y nadie contesta al teléfono", "es"),
        ("Schon wieder ist mein Flug gestrichen worden, unglaublich", "de"),
    ],
)
def test_the_language_of_an_ordinary_tweet_is_told_with_confidence(
    detector: LanguageDetector, text: str, code: str
) -> None:
    guess = detector.detect(text)
    assert (guess.code, guess.status) == (code, "detected")
    assert guess.confidence >= detector.min_confidence


@pytest.mark.parametrize("text", ["merci !", "ok 👍", "@AirParadis https://t.co/x 😡😡", "AP214"])
def test_too_short_to_tell_is_said_and_nothing_is_guessed(
    detector: LanguageDetector, text: str
) -> None:
    assert detector.detect(text) == LanguageGuess(code=None, confidence=0.0, status="too_short")


def test_the_floors_are_settings(detector: LanguageDetector) -> None:
    strict = LanguageDetector(min_letters=3, min_confidence=1.0)
    guess = strict.detect("merci beaucoup")
    assert guess.status == "uncertain" and guess.code is not None


def test_only_a_confident_other_language_makes_a_verdict_unreliable() -> None:
    assert reliability(FRENCH, ("en",))[0] is False
    assert "French" in (reliability(FRENCH, ("en",))[1] or "")
    assert reliability(FRENCH, ("en", "fr")) == (True, None)
    unsure = LanguageGuess(code="fr", confidence=0.6, status="uncertain")
    reliable, note = reliability(unsure, ("en",))
    assert reliable is True and note is not None and "perhaps French" in note
    short = LanguageGuess(status="too_short")
    assert reliability(short, ("en",)) == (True, "Too short to tell which language it is in.")
    assert reliability(None, ("en",)) == (True, None)  # an older producer: nothing said
    two = reliability(LanguageGuess(code="de", confidence=1, status="detected"), ("en", "fr"))
    assert "English and French" in (two[1] or "")


def test_preprocess_tells_the_language_and_infer_judges_it_against_the_versions(
    detector: LanguageDetector,
) -> None:
    tweets = [
        preprocess_tweet(TweetSubmitted(text=text), TextPolicy(), detector)
        for text in ("Vol annulé encore une fois, service client injoignable", "Great crew today")
    ]
    assert [t.language.code if t.language else None for t in tweets] == ["fr", "en"]
    english_model = LoadedModel("m", "1", KeywordModel(), languages=("en",))
    french, english = score_batch(english_model, tweets, now=NOW)
    assert (french.reliable, english.reliable) == (False, True)
    assert french.reliability_note and english.reliability_note is None
    bilingual = LoadedModel("m", "2", KeywordModel(), languages=("en", "fr"))
    assert all(t.reliable for t in score_batch(bilingual, tweets, now=NOW))


def test_an_alert_email_notes_reports_on_tweets_the_model_could_not_read() -> None:
    snapshot = PredictionSnapshot(
        text="Vol annulé encore une fois",
        label="positive",
        probability=0.8,
        threshold=0.7,
        model_name="m",
        model_version="1",
        scored_at=NOW,
        language=FRENCH,
        reliable=False,
        reliability_note="This reads as French.",
    )
    report = FeedbackReported(prediction_id="p1", correct_label="negative", prediction=snapshot)
    summary = report_summary(report)
    assert summary["language"] == "fr" and summary["reliable"] is False
    alert = AlertRaised(
        kind="wrong_predictions", summary="3 reports", details={"reports": [summary]}
    )
    text = render_summary(alert)
    assert "NOTE: This reads as French." in text
    assert "1 of these tweets was in a language the model did not learn" in text


def test_a_language_shift_is_raised_past_its_share_with_enough_tweets() -> None:
    mix = [
        {"language": "en", "tweets": 60, "share": 0.6},
        {"language": "fr", "tweets": 40, "share": 0.4},
    ]
    options = {"threshold": 0.25, "min_predictions": 50, "window_s": 3600.0, "now": NOW}
    shifted = language_shift_alert(
        {"predictions": 100, "unreliable": 40, "unreliable_share": 0.4}, mix, **options
    )
    assert shifted is not None and shifted.kind == "language_shift"
    assert "40% of the last 1 hour's tweets" in shifted.summary and "French 40%" in shifted.summary
    assert shifted.details["languages"] == {"en": 60, "fr": 40}
    calm = {"predictions": 100, "unreliable": 10, "unreliable_share": 0.1}
    assert language_shift_alert(calm, mix, **options) is None
    few = {"predictions": 10, "unreliable": 9, "unreliable_share": 0.9}
    assert language_shift_alert(few, mix, **options) is None
