"""A fitted scikit-learn classifier as an estimator: the simple family (TF-IDF or bag of words
with logistic regression, linear SVM, naive Bayes, random forest)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from shared.estimators.base import ModelLoadError, oov_shares
from shared.explain import linear_feature_weights


class SklearnEstimator:
    """A fitted scikit-learn classifier (usually a pipeline) over preprocessed text, labels 0/1."""

    def __init__(self, classifier: Any) -> None:
        classes = [int(label) for label in classifier.classes_]
        if sorted(classes) != [0, 1]:
            raise ModelLoadError(f"expected a classifier of labels 0 and 1, got {classes}")
        self.classifier = classifier
        self._positive_column = classes.index(1)

    def positive_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.classifier.predict_proba(list(texts))[:, self._positive_column])

    def feature_weights(self) -> Callable[[str], dict[str, float]] | None:
        """Exact per-feature log-odds contributions, when the pipeline is a linear model
        (logistic regression, naive Bayes) over a vectorizer; None otherwise."""
        steps = getattr(self.classifier, "steps", None)
        if not steps or not hasattr(steps[0][1], "get_feature_names_out"):
            return None
        final = steps[-1][1]
        if hasattr(final, "coef_") and final.coef_.shape[0] == 1:
            sign = 1.0 if self._positive_column == 1 else -1.0
            weights = sign * np.asarray(final.coef_[0])
        elif hasattr(final, "feature_log_prob_"):
            log_prob = np.asarray(final.feature_log_prob_)
            weights = log_prob[self._positive_column] - log_prob[1 - self._positive_column]
        else:
            return None
        return linear_feature_weights(steps[0][1], weights)

    def oov_rates(self, texts: Sequence[str]) -> np.ndarray | None:
        """Share of each text's words outside the fitted vocabulary's single words (a word
        min_df pruned counts as unknown: the model never sees it); None when the first step
        is not a vectorizer."""
        steps = getattr(self.classifier, "steps", None)
        vocabulary = getattr(steps[0][1], "vocabulary_", None) if steps else None
        if vocabulary is None:
            return None
        return oov_shares(texts, vocabulary.__contains__)

    def save(self, path: Path) -> None:
        joblib.dump(self.classifier, path)

    @classmethod
    def load(cls, path: Path) -> SklearnEstimator:
        return cls(joblib.load(path))
