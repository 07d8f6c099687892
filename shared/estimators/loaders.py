"""The loader of each estimator format: the family's module is imported on use, so a service
pays only for the family it serves (TensorFlow and onnxruntime take seconds and GBs)."""

from __future__ import annotations

from pathlib import Path

from shared.estimators.base import (
    KERAS_LSTM,
    ONNX_TRANSFORMER,
    SKLEARN_JOBLIB,
    EstimatorLoader,
    ProbabilityEstimator,
)


def _load_sklearn(path: Path) -> ProbabilityEstimator:
    from shared.estimators.sklearn import SklearnEstimator

    return SklearnEstimator.load(path)


def _load_onnx_transformer(path: Path) -> ProbabilityEstimator:
    from shared.estimators.onnx_transformer import OnnxTransformerEstimator

    return OnnxTransformerEstimator.load(path)


def _load_keras_lstm(path: Path) -> ProbabilityEstimator:
    from shared.estimators.keras_lstm import load

    return load(path)


# One entry per estimator format; a new family registers its loader here.
ESTIMATOR_LOADERS: dict[str, EstimatorLoader] = {
    SKLEARN_JOBLIB: _load_sklearn,
    ONNX_TRANSFORMER: _load_onnx_transformer,
    KERAS_LSTM: _load_keras_lstm,
}
