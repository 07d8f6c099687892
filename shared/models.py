"""The serving contract of every sentiment model: the pyfunc all families are logged as, and a
version loaded for scoring (shared/registry.py loads it).

All families are logged as one MLflow pyfunc, `SentimentModel`: text in, calibrated probability
of positive out (shared/calibration.py), with the preprocessing inside (its config is saved with
the model and rebuilt at load time) and the decision threshold beside it. A family differs only
in its estimator, which a loader from `ESTIMATOR_LOADERS` rebuilds from one artifact. Training
logs the model (training/model.py); services load it through the registry, leaving no MLflow
global state behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from shared.calibration import Calibration
from shared.estimators.base import (
    ModelLoadError,
    ProbabilityEstimator,
    estimator_oov_rates,
)
from shared.estimators.loaders import ESTIMATOR_LOADERS
from shared.explain import Explanation, linear, occlusion
from shared.preprocessing import PreprocessConfig, TextPreprocessor

TEXT_COLUMN = "text"
PROBABILITY_COLUMN = "probability"

# Keys of the pyfunc's artifacts.
CONFIG_ARTIFACT = "sentiment_config"
ESTIMATOR_ARTIFACT = "estimator"


@dataclass(frozen=True)
class SentimentModelConfig:
    """Everything besides the estimator that a SentimentModel needs, saved as one JSON artifact."""

    family: str
    estimator_format: str
    threshold: float
    preprocess: dict[str, bool]
    target_precision: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # shared/calibration.Calibration.as_params(); None: a model saved before calibration.
    calibration: dict[str, Any] | None = None

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> SentimentModelConfig:
        try:
            return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            raise ModelLoadError(f"unreadable model config {path}: {error}") from error


class SentimentModel(PythonModel):
    """The pyfunc of every family: raw tweets in, calibrated probability of positive out.

    Logged empty; load_context rebuilds the preprocessor, the estimator and the calibration
    from the artifacts.
    """

    def __init__(self) -> None:
        self._config: SentimentModelConfig | None = None
        self._preprocessor: TextPreprocessor | None = None
        self._estimator: ProbabilityEstimator | None = None
        self._calibration = Calibration()

    def load_context(self, context: PythonModelContext) -> None:
        config = SentimentModelConfig.read(Path(context.artifacts[CONFIG_ARTIFACT]))
        loader = ESTIMATOR_LOADERS.get(config.estimator_format)
        if loader is None:
            raise ModelLoadError(
                f"unknown estimator format {config.estimator_format!r}; "
                f"known: {sorted(ESTIMATOR_LOADERS)}"
            )
        self._bind(config, loader(Path(context.artifacts[ESTIMATOR_ARTIFACT])))

    @property
    def config(self) -> SentimentModelConfig:
        if self._config is None:
            raise ModelLoadError("the model is not loaded (load it with mlflow.pyfunc.load_model)")
        return self._config

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probability of positive for each raw tweet, in order: the fast path for
        serving."""
        preprocessor, estimator = self._loaded()
        if len(texts) == 0:
            return np.empty(0, dtype=float)
        return self._calibration.apply(estimator.positive_proba(preprocessor.transform(texts)))

    def score(self, texts: Sequence[str]) -> Scores:
        """Probability of positive and out-of-vocabulary rate of each raw tweet, preprocessed
        once: what the infer worker stores for drift monitoring."""
        preprocessor, estimator = self._loaded()
        if len(texts) == 0:
            return Scores(np.empty(0, dtype=float), None)
        cleaned = preprocessor.transform(texts)
        return Scores(
            self._calibration.apply(estimator.positive_proba(cleaned)),
            estimator_oov_rates(estimator, cleaned),
        )

    def predict(
        self, context: PythonModelContext | None, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        """pyfunc entry point: a `probability` column for a DataFrame with a `text` column.

        Called on the unwrapped model it also takes a list of str. Through mlflow.pyfunc the
        logged signature applies first, and it wants the `text` column (a DataFrame, or
        {"text": [...]}). The hint stays pd.DataFrame: MLflow reads other hints as a schema.
        """
        texts = _texts_of(model_input)
        return pd.DataFrame({PROBABILITY_COLUMN: self.predict_proba(texts)})

    def explain(self, text: str, budget_s: float) -> Explanation:
        """Each word's push toward positive: exact for linear models, occlusion otherwise."""
        preprocessor, estimator = self._loaded()
        weights = getattr(estimator, "feature_weights", None)
        feature_weights = weights() if callable(weights) else None
        if feature_weights is not None:
            return linear(text, preprocessor.tokens, feature_weights)
        return occlusion(text, self.predict_proba, budget_s)

    def _loaded(self) -> tuple[TextPreprocessor, ProbabilityEstimator]:
        if self._preprocessor is None or self._estimator is None:
            raise ModelLoadError("the model is not loaded (load it with mlflow.pyfunc.load_model)")
        return self._preprocessor, self._estimator

    def _bind(self, config: SentimentModelConfig, estimator: ProbabilityEstimator) -> None:
        self._config = config
        self._calibration = Calibration.from_params(config.calibration)
        preprocessor = TextPreprocessor(PreprocessConfig.from_params(config.preprocess))
        preprocessor.warm_up()  # language data loads now, not on the first tweet scored
        self._preprocessor = preprocessor
        self._estimator = estimator


@dataclass(frozen=True)
class Scores:
    """Probabilities of positive and, for models with a word vocabulary, the share of each
    tweet's tokens outside it (NaN where a tweet has no token; None: not measured)."""

    probabilities: np.ndarray
    oov_rates: np.ndarray | None


class ServingModel(Protocol):
    """What a version must do to serve: SentimentModel is one; the tests' fakes are others."""

    @property
    def threshold(self) -> float: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def score(self, texts: Sequence[str]) -> Scores: ...

    def explain(self, text: str, budget_s: float) -> Explanation: ...


@dataclass(frozen=True)
class LoadedModel:
    """A registered version ready to score. Label a tweet positive when proba >= threshold."""

    name: str
    version: str
    model: ServingModel
    # The threshold set by models.threshold (adaptive mode); None: the version's own.
    threshold_set: float | None = None
    # The languages of its training data (registry tag `languages`): the ones it can read.
    languages: tuple[str, ...] = ("en",)

    @property
    def threshold(self) -> float:
        """The threshold in use."""
        return self.model.threshold if self.threshold_set is None else self.threshold_set

    def with_threshold(self, threshold: float | None) -> LoadedModel:
        """The same version scoring at `threshold` (None: back to the version's own)."""
        return replace(self, threshold_set=threshold)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of positive of each raw tweet, in order."""
        return self.model.predict_proba(texts)

    def scores(self, texts: Sequence[str]) -> Scores:
        """Probabilities, with OOV rates where the model measures them, preprocessing once."""
        return self.model.score(texts)

    def explain(self, text: str, budget_s: float) -> Explanation:
        """Word contributions for one raw tweet within a time budget (seconds)."""
        return self.model.explain(text, budget_s)


def _texts_of(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN not in model_input.columns:
            raise ValueError(f"expected a column {TEXT_COLUMN!r}, got {list(model_input.columns)}")
        return [str(text) for text in model_input[TEXT_COLUMN]]
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, Iterable):
        return [str(text) for text in model_input]
    raise TypeError(
        f"expected a DataFrame with a {TEXT_COLUMN!r} column or a list of str, "
        f"got {type(model_input).__name__}"
    )
