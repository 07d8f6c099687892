"""The language fixture (tests/fixtures/languages.csv) is well-formed: the labelled tweets that
scripts/bench_language.py chooses the detector and its thresholds on (issue #19)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parents[1] / "fixtures" / "languages.csv"
LANGUAGES = ("en", "fr", "es", "de")
# At least this many of each label, as the issue asks (about 80 en, 80 fr, 50 es, 50 de,
# 40 mixed, 6 to 10 texts with no words).
MINIMUM = {"en": 80, "fr": 80, "es": 50, "de": 50, "mixed": 40, "und": 6}
LABEL_RE = re.compile(r"(en|fr|es|de|und)|mixed:(en|fr|es|de)\+(en|fr|es|de)")
# What the detector never reads: handles, URLs, '#', digits, emojis and punctuation.
NOT_A_WORD_RE = re.compile(r"@\w+|https?://\S+|[^\w\s']|[\d_]")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with FIXTURE.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["language", "text"]
        return list(reader)


def family(label: str) -> str:
    return label.split(":")[0]


def words(text: str) -> list[str]:
    return NOT_A_WORD_RE.sub(" ", text).split()


def test_fixture_has_at_least_300_labelled_texts(rows: list[dict[str, str]]) -> None:
    assert len(rows) >= 300
    assert all(row["text"].strip() for row in rows)


def test_every_label_is_a_language_a_mixed_pair_or_und(rows: list[dict[str, str]]) -> None:
    bad = [row["language"] for row in rows if not LABEL_RE.fullmatch(row["language"])]
    assert bad == []
    pairs = [row["language"].split(":")[1].split("+") for row in rows if ":" in row["language"]]
    assert all(first != second for first, second in pairs)


def test_each_language_has_its_share(rows: list[dict[str, str]]) -> None:
    counts = Counter(family(row["language"]) for row in rows)
    too_few = {
        label: counts[label] for label, minimum in MINIMUM.items() if counts[label] < minimum
    }
    assert too_few == {}
    assert counts["und"] <= 10


def test_mixed_texts_pair_english_with_french_spanish_and_german(
    rows: list[dict[str, str]],
) -> None:
    pairs = {row["language"] for row in rows if row["language"].startswith("mixed:")}
    assert {"mixed:fr+en", "mixed:es+en", "mixed:de+en"} <= pairs


def test_no_text_appears_twice(rows: list[dict[str, str]]) -> None:
    counts = Counter(row["text"].strip().casefold() for row in rows)
    assert [text for text, n in counts.items() if n > 1] == []


def test_short_texts_are_spread_over_the_languages(rows: list[dict[str, str]]) -> None:
    short = Counter(
        row["language"]
        for row in rows
        if row["language"] in LANGUAGES and 1 <= len(words(row["text"])) <= 4
    )
    assert sum(short.values()) >= 40
    assert all(short[language] >= 5 for language in LANGUAGES), short


def test_und_texts_hold_no_word(rows: list[dict[str, str]]) -> None:
    """Emojis, handles, URLs and numbers only: a detector has nothing to read there."""
    texts = [row["text"] for row in rows if row["language"] == "und"]
    assert [t for t in texts if any(len(w) > 2 for w in words(t))] == []


# --- The product's detector on the fixture (shared/language.py, its default floors) ---

# Measured by scripts/bench_language.py on this fixture: 95.6 % of single-language texts right
# (the detector asked about every one; here those under the letter floor get no guess), no
# English text flagged, 69 of 70 French texts of 3+ words flagged. The floors leave room for
# a detector update, not for a regression of the kind that matters.
ACCURACY_FLOOR = 0.93
FRENCH_FLAGGED_FLOOR = 65


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    from shared.language import LanguageDetector

    detector = LanguageDetector()
    detector.load()
    return detector


def test_the_detector_tells_single_language_texts_above_its_floor(
    rows: list[dict[str, str]], detector: object
) -> None:
    single = [row for row in rows if row["language"] in LANGUAGES]
    told = [detector.detect(row["text"]) for row in single]  # type: ignore[attr-defined]
    # A text too short to tell gets no guess (said, not wrong); of the others, enough right.
    answered = [(g, row) for g, row in zip(told, single, strict=True) if g.code is not None]
    right = sum(guess.code == row["language"] for guess, row in answered)
    assert len(answered) >= 0.9 * len(single), f"{len(answered)}/{len(single)} answered"
    assert right / len(answered) >= ACCURACY_FLOOR, f"{right}/{len(answered)}"


def test_no_english_text_is_flagged_and_french_drafts_are(
    rows: list[dict[str, str]], detector: object
) -> None:
    from shared.language import reliability

    def flagged(text: str) -> bool:
        return not reliability(detector.detect(text), ("en",))[0]  # type: ignore[attr-defined]

    english = [row["text"] for row in rows if row["language"] == "en"]
    assert [text for text in english if flagged(text)] == []
    french = [
        row["text"] for row in rows if row["language"] == "fr" and len(words(row["text"])) >= 3
    ]
    assert sum(flagged(text) for text in french) >= FRENCH_FLAGGED_FLOOR


def test_mixed_texts_get_one_of_their_two_languages_or_no_verdict(
    rows: list[dict[str, str]], detector: object
) -> None:
    for row in rows:
        if not row["language"].startswith("mixed:"):
            continue
        guess = detector.detect(row["text"])  # type: ignore[attr-defined]
        pair = set(row["language"].removeprefix("mixed:").split("+"))
        assert guess.status != "detected" or guess.code in pair, (row["text"], guess)


def test_texts_without_words_are_never_given_a_language(
    rows: list[dict[str, str]], detector: object
) -> None:
    for row in rows:
        if row["language"] == "und":
            assert detector.detect(row["text"]).status != "detected", row["text"]  # type: ignore[attr-defined]
