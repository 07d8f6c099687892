"""Which language a tweet is in, and whether the model serving it can read that language.

Every model here learnt from English tweets (Sentiment140): a French draft gets a confident label
that means nothing. Preprocess detects the language of each tweet (`LanguageDetector`, offline,
its model inside the installed package); infer compares it with the languages the serving
version was trained on (recorded in the registry) and says, in plain words, when its verdict is
a guess (`reliability`). Too few letters to tell: it says so rather than guess.

The detector and its two floors were chosen by measurement on tests/fixtures/languages.csv
(`python scripts/bench_language.py`; README, "Languages").
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.messages import LanguageGuess
from shared.settings import Settings

# A tweet needs this many letters, once handles, URLs, hashtag signs, emojis and digits are
# gone, before its language is told; below, "too short to tell".
MIN_LETTERS = 8
# Below this probability the best guess is only "uncertain", and never makes a verdict
# unreliable: a false "not English" on an English tweet is the costly mistake.
MIN_CONFIDENCE = 0.85
# What the detector may answer: the languages an airline's mentions come in. A closed set
# keeps short tweets from landing on a language nobody writes to the airline in.
LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl")

NAMES = {
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}

_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S*", re.IGNORECASE)
# @handles, and the placeholders shared/scrub.py leaves in a scrubbed tweet.
_HANDLE = re.compile(r"(?<![\w@])@\w+|<(?:handle|path|email|phone)>")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#\d+);")
_HASH = re.compile(r"#(?=\w)")
# Anything but letters, whitespace and the punctuation of prose goes: emojis, symbols, digits.
_NOT_PROSE = re.compile(r"[^\w\s'\u2019.,!?;:\u00bf\u00a1\"()-]|[\d_]")
_SPACES = re.compile(r"\s+")


def detectable_text(text: str) -> str:
    """The words of a tweet as the detector reads them: handles, scrub placeholders, URLs,
    HTML entities, emojis, symbols and digits out, hashtags kept as words, a shouted tweet
    lowercased (detectors learnt their n-grams on ordinary case)."""
    text = unicodedata.normalize("NFC", text)
    text = _HANDLE.sub(" ", _URL.sub(" ", text))
    text = _NOT_PROSE.sub(" ", _HASH.sub("", _ENTITY.sub(" ", text)))
    text = _SPACES.sub(" ", text).strip()
    upper = sum(character.isupper() for character in text)
    return text.lower() if upper > 0.7 * letters(text) else text


def letters(text: str) -> int:
    return sum(character.isalpha() for character in text)


Backend = Callable[[str], tuple[str, float]]


def _py3langid_backend(languages: Sequence[str]) -> Backend:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier: Any = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(languages))

    def classify(text: str) -> tuple[str, float]:
        code, probability = identifier.classify(text)
        return str(code), float(probability)

    return classify


@dataclass
class LanguageDetector:
    """Tells the language of a tweet; the model loads on first use (about 1 s, once per
    process) and is shared by the threads that call it."""

    min_letters: int = MIN_LETTERS
    min_confidence: float = MIN_CONFIDENCE
    languages: Sequence[str] = LANGUAGES

    def __post_init__(self) -> None:
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: Settings) -> LanguageDetector:
        """The detector with the settings' floors, its model loaded."""
        detector = cls(settings.language_min_letters, settings.language_min_confidence)
        detector.load()
        return detector

    def load(self) -> None:
        """Load the model now (preprocess does it at start, not on the first tweet)."""
        with self._lock:
            if self._backend is None:
                self._backend = _py3langid_backend(self.languages)

    def detect(self, text: str) -> LanguageGuess:
        words = detectable_text(text)
        if letters(words) < self.min_letters:
            return LanguageGuess(code=None, confidence=0.0, status="too_short")
        if self._backend is None:
            self.load()
        assert self._backend is not None
        code, confidence = self._backend(words)
        confidence = min(max(confidence, 0.0), 1.0)
        status = "detected" if confidence >= self.min_confidence else "uncertain"
        return LanguageGuess(code=code, confidence=round(confidence, 4), status=status)


def language_name(code: str | None) -> str:
    return NAMES.get(code or "", code or "an unknown language")


def _listed(codes: Sequence[str]) -> str:
    names = [language_name(code) for code in codes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reliability(
    guess: LanguageGuess | None, model_languages: Sequence[str]
) -> tuple[bool, str | None]:
    """Whether a verdict on a tweet in `guess`'s language can be trusted from a model trained on
    `model_languages`, and a note in the words a comms person reads (None: nothing to say)."""
    if guess is None or not model_languages:
        return True, None
    if guess.status == "too_short":
        return True, "Too short to tell which language it is in."
    if guess.code in model_languages:
        return True, None
    name, known = language_name(guess.code), _listed(model_languages)
    if guess.status == "uncertain":
        return True, f"Its language is unclear (perhaps {name}); the model reads {known}."
    return (
        False,
        f"This reads as {name}. The model only learnt {known} tweets, so this verdict is a "
        f"guess: have someone read it before you rely on it.",
    )
