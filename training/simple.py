"""Train the simple family: TF-IDF word 1-2 grams + a scikit-learn classifier, then register it.

One parent run holds the data, the chosen model and its test figures; each candidate classifier is
fitted in a nested run and judged on validation by its recall at the target precision. The
winner's threshold is chosen on validation, it is tested once, logged as the shared SentimentModel
pyfunc and registered. Promotion is a separate step (training/registry.py).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from shared.models import (
    FAMILY_TAG,
    SKLEARN_JOBLIB,
    TARGET_PRECISION_TAG,
    THRESHOLD_TAG,
    SentimentModel,
    SentimentModelConfig,
    SklearnEstimator,
)
from shared.preprocessing import PreprocessConfig, TextPreprocessor
from training.data import Split, balanced_sample, split
from training.evaluate import (
    ThresholdChoice,
    choose_threshold,
    classification_metrics,
    save_plots,
)
from training.model import ensure_experiment, log_sentiment_model, mlflow_at
from training.registry import register_version

logger = logging.getLogger(__name__)

FAMILY = "simple"
DEFAULT_CANDIDATES = ("logreg",)
_SINGLE_TWEET_TIMINGS = 200


@dataclass(frozen=True)
class TfidfOptions:
    """The features every candidate shares."""

    min_df: int = 2
    max_features: int | None = None

    def vectorizer(self) -> TfidfVectorizer:
        # The preprocessor decides case and tokens; the vectorizer only splits on whitespace.
        return TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=self.min_df,
            max_features=self.max_features,
            lowercase=False,
            token_pattern=r"\S+",
            sublinear_tf=True,
            dtype=np.float32,
        )

    def as_params(self) -> dict[str, object]:
        return {
            "tfidf.ngram_range": "1-2",
            "tfidf.min_df": self.min_df,
            "tfidf.max_features": self.max_features,
        }


@dataclass(frozen=True)
class Candidate:
    """One classifier tried on the TF-IDF features, with the parameters logged for it."""

    name: str
    classifier: Callable[[int], object]  # seed -> unfitted classifier with predict_proba
    params: dict[str, object]


def _logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


# Candidates by name; the suite tries those it is asked for and keeps the best on validation.
CANDIDATES: dict[str, Candidate] = {
    "logreg": Candidate(
        name="logreg",
        classifier=_logistic_regression,
        params={"clf": "LogisticRegression", "clf.C": 1.0, "clf.max_iter": 1000},
    ),
}


@dataclass(frozen=True)
class TrainResult:
    """What a training produced: the registered version and the figures it was chosen on."""

    run_id: str
    model_uri: str
    model_name: str
    version: str
    candidate: str
    threshold: ThresholdChoice
    test_at_default: dict[str, float]
    test_at_threshold: dict[str, float]
    val_at_threshold: dict[str, float]
    sizes: dict[str, int]
    preprocess_seconds: float
    train_seconds: float
    inference_ms_per_tweet: float
    inference_ms_per_tweet_single: float
    model_size_bytes: int


@dataclass(frozen=True)
class _Texts:
    """Preprocessed texts of each split."""

    train: list[str]
    val: list[str]
    test: list[str]


@dataclass(frozen=True)
class _Fitted:
    name: str
    pipeline: Pipeline
    choice: ThresholdChoice
    val_metrics: dict[str, float]
    train_seconds: float


def train_simple(
    data: pd.DataFrame | Split,
    *,
    preprocess: PreprocessConfig,
    target_precision: float,
    tracking_uri: str,
    model_name: str,
    artifacts_dir: Path,
    experiment: str = "airparadis",
    sample: int | None = None,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    min_df: int = 2,
    max_features: int | None = None,
    data_source: str | None = None,
    run_name: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train, evaluate, log and register a simple model; return the new version and its figures.

    data is a loaded Sentiment140 frame (optionally downsampled to `sample` balanced tweets, then
    split with `val`, `test` and `seed`) or a ready Split. Runs and artifacts go to tracking_uri
    and artifacts_dir only.
    """
    chosen = _candidates(candidates)
    splits = _as_split(data, sample=sample, val=val, test=test, seed=seed)
    features = TfidfOptions(min_df=min_df, max_features=max_features)
    started = time.perf_counter()
    texts = _preprocess(splits, preprocess, progress=progress)
    preprocess_seconds = time.perf_counter() - started

    experiment_id = ensure_experiment(tracking_uri, experiment, artifacts_dir)
    with (
        mlflow_at(tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name or FAMILY) as run,
        tempfile.TemporaryDirectory(prefix="airparadis-train-") as work,
    ):
        mlflow.set_tag(FAMILY_TAG, FAMILY)
        mlflow.log_params(
            _run_params(splits, preprocess, features, chosen, target_precision, data_source)
            | {"data.sample": sample, "data.seed": seed, "split.val": val, "split.test": test}
        )
        _log_split(splits, Path(work))
        mlflow.log_metric("preprocess_seconds", preprocess_seconds)

        fitted = [
            _fit_candidate(
                CANDIDATES[name], features, splits, texts, target_precision, seed, experiment_id
            )
            for name in chosen
        ]
        best = max(fitted, key=_validation_rank)
        result = _test_and_log(best, splits, texts, Path(work))
        config = SentimentModelConfig(
            family=FAMILY,
            estimator_format=SKLEARN_JOBLIB,
            threshold=best.choice.threshold,
            preprocess=preprocess.as_params(),
            target_precision=target_precision,
            extra={"candidate": best.name},
        )
        estimator_path = Path(work) / "estimator.joblib"
        SklearnEstimator(best.pipeline).save(estimator_path)
        model_info = log_sentiment_model(config, estimator_path, family_packages=("scikit-learn",))
        serving = _measure_logged_model(model_info.model_uri, splits, best, texts)
        mlflow.log_metrics(serving)
        version = register_version(
            tracking_uri,
            model_info.model_uri,
            model_name,
            tags=_version_tags(best, target_precision),
        )
        mlflow.set_tag("registered_version", version.version)

    logger.info("trained %s (%s) as %s version %s", FAMILY, best.name, model_name, version.version)
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=model_info.model_uri,
        model_name=model_name,
        version=version.version,
        candidate=best.name,
        threshold=best.choice,
        test_at_default=result["test_at_default"],
        test_at_threshold=result["test_at_threshold"],
        val_at_threshold=best.val_metrics,
        sizes=splits.sizes(),
        preprocess_seconds=preprocess_seconds,
        train_seconds=best.train_seconds,
        inference_ms_per_tweet=serving["inference_ms_per_tweet"],
        inference_ms_per_tweet_single=serving["inference_ms_per_tweet_single"],
        model_size_bytes=int(serving["model_size_bytes"]),
    )


def _candidates(names: Sequence[str]) -> list[str]:
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown or not names:
        raise ValueError(f"unknown or no candidates {list(names)}; known: {sorted(CANDIDATES)}")
    return list(dict.fromkeys(names))


def _run_params(
    splits: Split,
    preprocess: PreprocessConfig,
    features: TfidfOptions,
    candidates: list[str],
    target_precision: float,
    data_source: str | None,
) -> dict[str, object]:
    return {
        "family": FAMILY,
        "data.source": data_source or "in-memory",
        **{f"data.n_{name}": size for name, size in splits.sizes().items()},
        "target_precision": target_precision,
        "candidates": ",".join(candidates),
        **preprocess.as_params(),
        **features.as_params(),
    }


def _version_tags(best: _Fitted, target_precision: float) -> dict[str, str]:
    return {
        THRESHOLD_TAG: str(best.choice.threshold),
        TARGET_PRECISION_TAG: str(target_precision),
        "threshold_reached": str(best.choice.reached).lower(),
        FAMILY_TAG: FAMILY,
        "candidate": best.name,
    }


def _as_split(
    data: pd.DataFrame | Split, *, sample: int | None, val: float, test: float, seed: int
) -> Split:
    if isinstance(data, Split):
        if sample is not None:
            raise ValueError("sample applies to a frame, not to a ready Split")
        return data
    frame = balanced_sample(data, sample, seed=seed) if sample is not None else data
    return split(frame, val=val, test=test, seed=seed)


def _preprocess(splits: Split, config: PreprocessConfig, *, progress: bool) -> _Texts:
    preprocessor = TextPreprocessor(config)

    def clean(frame: pd.DataFrame, name: str) -> list[str]:
        tweets = tqdm(frame["text"], desc=f"preprocess {name}", unit="tweet", disable=not progress)
        return [preprocessor(tweet) for tweet in tweets]

    return _Texts(
        train=clean(splits.train, "train"),
        val=clean(splits.val, "val"),
        test=clean(splits.test, "test"),
    )


def _log_split(splits: Split, work: Path) -> None:
    path = work / "split.csv.gz"
    splits.assignments().to_csv(path, index=False)
    mlflow.log_artifact(str(path), artifact_path="data")


def _fit_candidate(
    candidate: Candidate,
    features: TfidfOptions,
    splits: Split,
    texts: _Texts,
    target_precision: float,
    seed: int,
    experiment_id: str,
) -> _Fitted:
    # Without experiment_id a nested run lands in MLflow's default experiment, not its parent's.
    with mlflow.start_run(run_name=candidate.name, nested=True, experiment_id=experiment_id):
        mlflow.log_params({"candidate": candidate.name, **candidate.params, **features.as_params()})
        pipeline = Pipeline([("tfidf", features.vectorizer()), ("clf", candidate.classifier(seed))])
        started = time.perf_counter()
        pipeline.fit(texts.train, splits.train["label"].to_numpy())
        train_seconds = time.perf_counter() - started
        val_proba = SklearnEstimator(pipeline).positive_proba(texts.val)
        choice = choose_threshold(splits.val["label"], val_proba, target_precision)
        val_metrics = classification_metrics(splits.val["label"], val_proba, choice.threshold)
        mlflow.log_metrics(
            {
                "train_seconds": train_seconds,
                "threshold": choice.threshold,
                "threshold_reached": float(choice.reached),
                **{f"val.at_threshold.{key}": value for key, value in val_metrics.items()},
            }
        )
    return _Fitted(candidate.name, pipeline, choice, val_metrics, train_seconds)


def _validation_rank(fitted: _Fitted) -> tuple[bool, float, float]:
    """Reaching the target first, then recall there (or precision when not reached), then PR AUC."""
    choice = fitted.choice
    return (
        choice.reached,
        choice.recall if choice.reached else choice.precision,
        fitted.val_metrics["pr_auc"],
    )


def _test_and_log(
    best: _Fitted, splits: Split, texts: _Texts, work: Path
) -> dict[str, dict[str, float]]:
    labels = splits.test["label"].to_numpy()
    proba = SklearnEstimator(best.pipeline).positive_proba(texts.test)
    at_default = classification_metrics(labels, proba, 0.5)
    at_threshold = classification_metrics(labels, proba, best.choice.threshold)
    mlflow.log_params({"candidate.chosen": best.name})
    mlflow.log_metrics(
        {
            "threshold": best.choice.threshold,
            "threshold_reached": float(best.choice.reached),
            "train_seconds": best.train_seconds,
            **{f"val.at_threshold.{key}": value for key, value in best.val_metrics.items()},
            **{f"test.at_0.5.{key}": value for key, value in at_default.items()},
            **{f"test.at_threshold.{key}": value for key, value in at_threshold.items()},
        }
    )
    for path in save_plots(labels, proba, best.choice.threshold, work / "plots"):
        mlflow.log_artifact(str(path), artifact_path="plots")
    return {"test_at_default": at_default, "test_at_threshold": at_threshold}


def _measure_logged_model(
    model_uri: str, splits: Split, best: _Fitted, texts: _Texts
) -> dict[str, float]:
    """Load the logged model back as serving will, check it agrees with training, time it."""
    with tempfile.TemporaryDirectory(prefix="airparadis-model-") as download_dir:
        local_path = mlflow.artifacts.download_artifacts(model_uri, dst_path=download_dir)
        size = sum(path.stat().st_size for path in Path(local_path).rglob("*") if path.is_file())
        model = mlflow.pyfunc.load_model(local_path).unwrap_python_model()
    if not isinstance(model, SentimentModel):
        raise TypeError(f"logged model loads as {type(model).__name__}, not SentimentModel")
    raw = splits.test["text"].tolist()
    started = time.perf_counter()
    served = model.predict_proba(raw)
    batch_ms = (time.perf_counter() - started) * 1000 / len(raw)
    expected = SklearnEstimator(best.pipeline).positive_proba(texts.test)
    if not np.allclose(served, expected, atol=1e-6):
        raise RuntimeError("the logged model disagrees with the trained one (train/serve skew)")
    singles = raw[:_SINGLE_TWEET_TIMINGS]
    started = time.perf_counter()
    for tweet in singles:
        model.predict_proba([tweet])
    single_ms = (time.perf_counter() - started) * 1000 / len(singles)
    return {
        "inference_ms_per_tweet": batch_ms,
        "inference_ms_per_tweet_single": single_ms,
        "model_size_bytes": float(size),
    }
