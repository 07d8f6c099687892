"""Why a model called a tweet positive or negative: a contribution for each word of the tweet.

Two methods, same output (one signed number per word, positive = pushed toward "positive"):
- linear: for a linear model over TF-IDF or counts, the exact contribution of each feature
  (weight x value, in log-odds), shared among the words that produced it;
- occlusion: for any model, the drop in probability when the word is removed, with every
  variant of the tweet scored in batched calls, within a time budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

OCCLUSION_CHUNK = 32
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Word:
    """A word of the tweet as the user typed it, with its place for highlighting."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Explanation:
    words: list[Word]
    contributions: list[float]
    method: str  # "linear" | "occlusion"
    complete: bool  # False when the time budget ran out before every word was scored


def words_of(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def without(text: str, word: Word) -> str:
    return (text[: word.start] + " " + text[word.end :]).strip()


def occlusion(
    text: str,
    predict_proba: Callable[[list[str]], np.ndarray],
    budget_s: float,
) -> Explanation:
    """Contribution of word i = P(positive | tweet) - P(positive | tweet without word i)."""
    words = words_of(text)
    deadline = time.monotonic() + budget_s
    base = float(predict_proba([text])[0])
    contributions: list[float] = []
    for start in range(0, len(words), OCCLUSION_CHUNK):
        if time.monotonic() > deadline:
            break
        chunk = words[start : start + OCCLUSION_CHUNK]
        scores = predict_proba([without(text, w) or " " for w in chunk])
        contributions += [base - float(s) for s in scores]
    complete = len(contributions) == len(words)
    contributions += [0.0] * (len(words) - len(contributions))
    return Explanation(words, contributions, "occlusion", complete)


def linear(
    text: str,
    tokens_of: Callable[[str], list[str]],
    feature_weights: Callable[[str], dict[str, float]],
) -> Explanation:
    """Share each feature's log-odds contribution among the words whose tokens make it.

    tokens_of gives the model's tokens for a piece of text (the model's own preprocessing);
    feature_weights gives, for the whole preprocessed tweet, each active feature (a token or an
    n-gram of tokens joined by spaces) with its weight x value.
    """
    words = words_of(text)
    tokens_by_word = [set(tokens_of(w.text)) for w in words]
    contributions = [0.0] * len(words)
    for feature, weight in feature_weights(" ".join(tokens_of(text))).items():
        parts = feature.split(" ")
        for token in parts:
            owners = [i for i, tokens in enumerate(tokens_by_word) if token in tokens]
            for i in owners:
                contributions[i] += weight / len(parts) / len(owners)
    return Explanation(words, contributions, "linear", True)


def linear_feature_weights(
    vectorizer: object, coefficients: np.ndarray
) -> Callable[[str], dict[str, float]]:
    """feature_weights for a fitted scikit-learn vectorizer and per-feature log-odds weights."""
    names: Sequence[str] = vectorizer.get_feature_names_out()  # type: ignore[attr-defined]

    def weights(preprocessed: str) -> dict[str, float]:
        row = vectorizer.transform([preprocessed]).tocsr()  # type: ignore[attr-defined]
        return {
            str(names[j]): float(coefficients[j] * value)
            for j, value in zip(row.indices, row.data, strict=True)
        }

    return weights
