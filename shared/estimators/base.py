"""What every estimator family shares, with no dependency on the model or the registry:
the errors of loading, the probability protocol, the format names and the OOV measure.

An estimator turns preprocessed texts into the probability of the positive label; the
pyfunc `SentimentModel` (shared/models.py) wraps one with the preprocessing and the threshold.
The loader of each format is in `loaders.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

# The formats an estimator is saved in (the `estimator_format` of a SentimentModelConfig).
SKLEARN_JOBLIB = "sklearn-joblib"
ONNX_TRANSFORMER = "onnx-transformer"
KERAS_LSTM = "keras-lstm"


class ModelLoadError(Exception):
    """A registered model cannot be loaded for scoring; the message says why."""


class ModelNotFoundError(ModelLoadError):
    """The registry has no such model, version or alias."""


class ProbabilityEstimator(Protocol):
    """What a family plugs in behind SentimentModel: preprocessed texts to P(positive)."""

    def positive_proba(self, texts: Sequence[str]) -> np.ndarray: ...


EstimatorLoader = Callable[[Path], ProbabilityEstimator]


def oov_shares(texts: Sequence[str], known: Callable[[str], bool]) -> np.ndarray:
    """Share of each preprocessed text's tokens the model does not know; NaN for a text with
    no token (nothing to measure)."""
    rates = np.full(len(texts), np.nan)
    for index, text in enumerate(texts):
        tokens = text.split()
        if tokens:
            rates[index] = sum(not known(token) for token in tokens) / len(tokens)
    return rates


def estimator_oov_rates(estimator: ProbabilityEstimator, texts: Sequence[str]) -> np.ndarray | None:
    """The out-of-vocabulary rate of each preprocessed text for estimators that have a word
    vocabulary (an `oov_rates` method); None for the others (e.g. a subword transformer)."""
    measure = getattr(estimator, "oov_rates", None)
    rates = None if measure is None else measure(texts)
    return None if rates is None else np.asarray(rates, dtype=float)
