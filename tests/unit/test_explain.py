"""Word contributions: occlusion for any model, exact shares for linear models."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from shared.estimators.sklearn import SklearnEstimator
from shared.explain import Explanation, linear, occlusion, words_of


def keyword_proba(texts: list[str]) -> np.ndarray:
    return np.array([0.5 + 0.4 * ("great" in t) - 0.4 * ("lost" in t) for t in texts])


def top_words(explanation: Explanation, sign: int) -> list[tuple[str, float]]:
    """The words that pushed toward positive (sign=1) or negative (sign=-1), strongest first."""
    scored = [
        (w.text, c)
        for w, c in zip(explanation.words, explanation.contributions, strict=True)
        if c * sign > 0
    ]
    return sorted(scored, key=lambda item: -abs(item[1]))


def test_words_keep_their_place_in_the_tweet() -> None:
    text = "  Lost  my bag!"
    assert [(w.text, text[w.start : w.end]) for w in words_of(text)] == [
        ("Lost", "Lost"),
        ("my", "my"),
        ("bag!", "bag!"),
    ]


def test_occlusion_credits_the_words_that_move_the_score() -> None:
    explanation = occlusion("lost bag great crew", keyword_proba, budget_s=5)
    assert explanation.method == "occlusion" and explanation.complete
    assert np.allclose(explanation.contributions, [-0.4, 0.0, 0.4, 0.0])
    assert top_words(explanation, 1) == [("great", 0.4)]
    assert top_words(explanation, -1) == [("lost", -0.4)]


def test_occlusion_out_of_time_says_it_is_incomplete() -> None:
    text = " ".join(["word"] * 100)
    explanation = occlusion(text, keyword_proba, budget_s=0)
    assert explanation.complete is False
    assert len(explanation.contributions) == 100


def test_linear_shares_sum_to_the_model_log_odds() -> None:
    texts = ["great crew", "great seats", "lost bag", "lost luggage", "great food", "bag lost"]
    labels = [1, 1, 0, 0, 1, 0]
    pipeline = Pipeline(
        [("tfidf", TfidfVectorizer(ngram_range=(1, 2))), ("clf", LogisticRegression())]
    ).fit(texts, labels)
    weights = SklearnEstimator(pipeline).feature_weights()
    assert weights is not None
    explanation = linear("great bag", str.split, weights)
    clf = pipeline.named_steps["clf"]
    features = pipeline.named_steps["tfidf"].transform(["great bag"])
    log_odds = clf.decision_function(features)[0] - clf.intercept_[0]
    assert np.isclose(sum(explanation.contributions), log_odds)
    assert explanation.contributions[0] > 0  # "great" pushes toward positive


def test_a_non_linear_pipeline_has_no_feature_weights() -> None:
    from sklearn.ensemble import RandomForestClassifier

    pipeline = Pipeline(
        [("tfidf", TfidfVectorizer()), ("clf", RandomForestClassifier(n_estimators=3))]
    ).fit(["great crew", "lost bag"], [1, 0])
    assert SklearnEstimator(pipeline).feature_weights() is None
