"""The serving contract of every sentiment model, and loading registered versions for scoring.

All families are logged as one MLflow pyfunc, `SentimentModel`: text in, probability of positive
out, with the preprocessing inside (its config is saved with the model and rebuilt at load time)
and the decision threshold beside it. A family differs only in its estimator, which a loader from
`ESTIMATOR_LOADERS` rebuilds from one artifact. Training logs the model (training/model.py);
services load it here with the registry URI passed in, leaving no MLflow global state behind.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel, PythonModelContext

from shared.estimators.base import (
    ESTIMATOR_LOADERS,
    ModelLoadError,
    ModelNotFoundError,
    ProbabilityEstimator,
    estimator_oov_rates,
)
from shared.explain import Explanation, linear, occlusion
from shared.preprocessing import PreprocessConfig, TextPreprocessor

CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"

TEXT_COLUMN = "text"
PROBABILITY_COLUMN = "probability"

# Keys of the pyfunc's artifacts.
CONFIG_ARTIFACT = "sentiment_config"
ESTIMATOR_ARTIFACT = "estimator"

# Tags on a registered model version.
THRESHOLD_TAG = "threshold"
TARGET_PRECISION_TAG = "target_precision"
FAMILY_TAG = "family"

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


@dataclass(frozen=True)
class SentimentModelConfig:
    """Everything besides the estimator that a SentimentModel needs, saved as one JSON artifact."""

    family: str
    estimator_format: str
    threshold: float
    preprocess: dict[str, bool]
    target_precision: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
    """The pyfunc of every family: raw tweets in, probability of positive out.

    Logged empty; load_context rebuilds the preprocessor and the estimator from the artifacts.
    """

    def __init__(self) -> None:
        self._config: SentimentModelConfig | None = None
        self._preprocessor: TextPreprocessor | None = None
        self._estimator: ProbabilityEstimator | None = None

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
        """Probability of positive for each raw tweet, in order: the fast path for serving."""
        preprocessor, estimator = self._loaded()
        if len(texts) == 0:
            return np.empty(0, dtype=float)
        return np.asarray(estimator.positive_proba(preprocessor.transform(texts)), dtype=float)

    def score(self, texts: Sequence[str]) -> Scores:
        """Probability of positive and out-of-vocabulary rate of each raw tweet, preprocessed
        once: what the infer worker stores for drift monitoring."""
        preprocessor, estimator = self._loaded()
        if len(texts) == 0:
            return Scores(np.empty(0, dtype=float), None)
        cleaned = preprocessor.transform(texts)
        return Scores(
            np.asarray(estimator.positive_proba(cleaned), dtype=float),
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


@dataclass(frozen=True)
class LoadedModel:
    """A registered version ready to score. Label a tweet positive when proba >= threshold."""

    name: str
    version: str
    threshold: float
    predict_proba: Callable[[list[str]], np.ndarray]
    # Word contributions for one raw tweet within a time budget (seconds); None: occlusion
    # on predict_proba by the caller.
    explain: Callable[[str, float], Explanation] | None = None
    # Probabilities with out-of-vocabulary rates, preprocessing once; None: probabilities only.
    score: Callable[[list[str]], Scores] | None = None

    def scores(self, texts: list[str]) -> Scores:
        """Probabilities, with OOV rates where the model measures them."""
        if self.score is not None:
            return self.score(texts)
        return Scores(np.asarray(self.predict_proba(texts), dtype=float), None)


@dataclass(frozen=True)
class ModelVersionInfo:
    """What the registry says about one version, without loading it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    threshold: float | None
    run_id: str | None
    tags: Mapping[str, str]

    @classmethod
    def of(cls, version: ModelVersion) -> ModelVersionInfo:
        tags = dict(version.tags or {})
        threshold = tags.get(THRESHOLD_TAG)
        return cls(
            name=version.name,
            version=str(version.version),
            aliases=tuple(version.aliases or ()),
            threshold=float(threshold) if threshold is not None else None,
            run_id=version.run_id,
            tags=tags,
        )


def registry_client(tracking_uri: str) -> mlflow.MlflowClient:
    """A client bound to one tracking and registry URI, independent of MLflow's globals."""
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def read_run_artifact(tracking_uri: str, run_id: str, artifact_path: str) -> bytes:
    """The bytes of one file logged in a run (the split, the drift reference)."""
    with tempfile.TemporaryDirectory(prefix="airparadis-artifact-") as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact_path, dst_path=folder, tracking_uri=tracking_uri
        )
        return Path(path).read_bytes()


def get_champion(tracking_uri: str, model_name: str) -> ModelVersionInfo | None:
    """The version holding the alias champion, or None when there is none (or no such model)."""
    return get_alias(tracking_uri, model_name, CHAMPION)


def get_alias(tracking_uri: str, model_name: str, alias: str) -> ModelVersionInfo | None:
    try:
        version = registry_client(tracking_uri).get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in _NOT_FOUND_CODES:
            return None
        raise
    return ModelVersionInfo.of(version)


def get_version(tracking_uri: str, model_name: str, version: str) -> ModelVersionInfo:
    try:
        found = registry_client(tracking_uri).get_model_version(model_name, str(version))
    except MlflowException as error:
        if error.error_code in _NOT_FOUND_CODES:
            raise ModelNotFoundError(
                f"no version {version} of model {model_name!r} at {tracking_uri}"
            ) from error
        raise
    return ModelVersionInfo.of(found)


def load_champion(tracking_uri: str, model_name: str) -> LoadedModel:
    """Load the champion version for scoring; ModelNotFoundError when no version holds it."""
    champion = get_champion(tracking_uri, model_name)
    if champion is None:
        raise ModelNotFoundError(
            f"no version of model {model_name!r} holds the alias {CHAMPION!r} at {tracking_uri}"
        )
    # Load by number, not by alias, so the version reported is the one loaded even if the alias
    # moves meanwhile.
    return _load(tracking_uri, model_name, champion.version)


def load_version(tracking_uri: str, model_name: str, version: str) -> LoadedModel:
    """Load one registered version for scoring."""
    get_version(tracking_uri, model_name, version)
    return _load(tracking_uri, model_name, str(version))


def _load(tracking_uri: str, model_name: str, version: str) -> LoadedModel:
    # The estimator is read into memory by load_context, so the download can go right after.
    # The registry resolves the version to its storage URI here: a models:/ URI would be
    # resolved against MLflow's global tracking URI, not this one.
    storage_uri = registry_client(tracking_uri).get_model_version_download_uri(model_name, version)
    with tempfile.TemporaryDirectory(prefix="airparadis-model-") as download_dir:
        local_path = mlflow.artifacts.download_artifacts(
            artifact_uri=storage_uri,
            dst_path=download_dir,
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        try:
            python_model = mlflow.pyfunc.load_model(local_path).unwrap_python_model()
        except MlflowException as error:
            raise ModelLoadError(
                f"cannot load version {version} of model {model_name!r}: {error}"
            ) from error
    if not isinstance(python_model, SentimentModel):
        raise ModelLoadError(
            f"version {version} of model {model_name!r} is a {type(python_model).__name__}, "
            "not an Air Paradis SentimentModel"
        )
    return LoadedModel(
        name=model_name,
        version=version,
        threshold=python_model.threshold,
        predict_proba=python_model.predict_proba,
        explain=python_model.explain,
        score=python_model.score,
    )


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
