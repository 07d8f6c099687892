"""The training flow all model families share: split, preprocess, fit, threshold, test, register.

A family (training/simple.py, training/lstm.py, training/transformer.py) only says how to fit an
estimator on preprocessed texts and how to save it; `train_family` does the rest the same way for
all of them, so their figures compare in `airparadis models compare`:

- one parent MLflow run (tag `family`) with the split (artifact `data/split.csv.gz`), the params
  (the family's hyper-parameters, `preprocess.*`, `data.*`, `split.*`, `target_precision`);
- `family.fit` inside it, timed (`train_seconds`); it may log per-epoch metrics and nested runs;
- the probability calibrated on validation (Platt or isotonic, whichever has the lower
  cross-validated Brier score: param `calibration`, metrics `val.cv_brier.*`), its effect on
  the test split (`test.calibration.*`: ECE and Brier score, raw and calibrated);
- the threshold chosen on validation for the target precision, the test metrics at 0.5
  (`test.at_0.5.*`) and at that threshold (`test.at_threshold.*`), the plots (`plots/`), and
  the operating curve on the test split (`operating_curve.json`, shared/shift.py);
- the shared SentimentModel pyfunc logged with the saved estimator, loaded back and checked
  against the in-memory estimator (train/serve skew), timed per tweet, measured on disk;
- a registered version tagged with the threshold, family, target precision, data size and the
  test figures, and the drift reference of its validation set (`drift_reference.json`, see
  shared/drift.py). Promotion is a separate step (training/registry.py).

Promotions compare versions on the registry's frozen holdout: the first version's test split
(at most HOLDOUT_MAX_TWEETS of it) becomes it, and every later training leaves its tweets out
before splitting (param `data.holdout_excluded`), so no version trains or validates on them.

The data is logged as MLflow datasets: `sentiment140` (the tweets split into train, validation
and test; param `data.sentiment140.rows`) and, when a training is given labelled airline reports
(`extra`, training/feedback.py), `airline-feedback` (params `data.airline_feedback.*`). Those
reports join the training split only, so validation, the threshold and the test figures stay
Sentiment140's and compare across versions; the most recent of them, kept apart, give the
in-domain figures (`indomain.at_threshold.*`, also on the version's tags) and their split is
logged as `data/indomain_split.csv.gz`. A family that sets `weighs_samples = True` fits with
per-tweet weights (`Texts.weights`: `extra.weight` for a report, 1 for a Sentiment140 tweet);
the others get each report round(weight) times (at least once).

A family that picks among candidates may also define `describe(estimator) -> str`, the name of
what it kept (logged as `candidate.chosen`, the version tag `candidate` and TrainResult.candidate);
otherwise the family name is used.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from tqdm.auto import tqdm

from shared.calibration import fit_calibration
from shared.drift import REFERENCE_ARTIFACT, build_reference, to_json
from shared.estimators.base import ProbabilityEstimator, estimator_oov_rates
from shared.models import SentimentModel, SentimentModelConfig
from shared.preprocessing import PreprocessConfig, TextPreprocessor
from shared.registry import (
    DEFAULT_LANGUAGES,
    FAMILY_TAG,
    HOLDOUT_EXPERIMENT,
    LANGUAGES_TAG,
    TARGET_PRECISION_TAG,
    THRESHOLD_TAG,
    Registry,
    mlflow_at,
)
from shared.shift import OPERATING_CURVE_ARTIFACT, OperatingCurve
from training.data import Split, balanced_sample, split
from training.evaluate import (
    ThresholdChoice,
    calibration_metrics,
    choose_threshold,
    classification_metrics,
    save_plots,
)
from training.feedback import DATASET_NAME as FEEDBACK_DATASET
from training.feedback import InDomainData
from training.model import ensure_experiment, log_sentiment_model
from training.registry import (
    CALIBRATION_PARAM,
    CALIBRATION_TAG,
    CANDIDATE_TAG,
    DATA_SIZE_TAG,
    INDOMAIN_AT_THRESHOLD_PREFIX,
    INDOMAIN_SPLIT_ARTIFACT,
    INDOMAIN_TWEETS_TAG,
    SPLIT_ARTIFACT,
    TEST_AT_DEFAULT_PREFIX,
    TEST_AT_THRESHOLD_PREFIX,
    TEST_CALIBRATION_PREFIX,
    THRESHOLD_REACHED_TAG,
)

logger = logging.getLogger(__name__)

_SINGLE_TWEET_TIMINGS = 200
# Served and in-memory probabilities may differ by float rounding (float32 networks, ONNX);
# a preprocessing skew moves them by far more than this.
SKEW_TOLERANCE = 1e-4
# The holdout made from a first version's test split: enough tweets to tell precisions apart to
# about 0.005, few enough for a promotion to score it with two transformers on a CPU.
HOLDOUT_MAX_TWEETS = 20_000
HOLDOUT_EXCLUDED_PARAM = "data.holdout_excluded"
SENTIMENT140_DATASET = "sentiment140"
FEEDBACK_PARAMS = "data.airline_feedback."


@dataclass(frozen=True)
class Texts:
    """Tweets of one split, already preprocessed with the run's PreprocessConfig, and labels 0/1."""

    texts: list[str]
    labels: np.ndarray
    # How much each tweet counts in the fit, for a family that weighs samples (None: alike).
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)


class Family(Protocol):
    """What a model family plugs into train_family."""

    name: str  # "simple" | "lstm" | "transformer" (MLflow tag family)
    estimator_format: str  # key of shared.estimators.loaders.ESTIMATOR_LOADERS
    packages: tuple[str, ...]  # pip packages pinned into the logged model's requirements

    def params(self) -> dict[str, object]:
        """Hyper-parameters, logged as params of the parent run."""
        ...

    def fit(self, train: Texts, val: Texts, work: Path, experiment_id: str) -> ProbabilityEstimator:
        """Fit on train (val for early stopping or model choice); work is a scratch folder.

        Runs inside the parent run: mlflow.log_metric(..., step=epoch) goes there; nested runs
        need mlflow.start_run(nested=True, experiment_id=experiment_id).
        """
        ...

    def save(self, estimator: ProbabilityEstimator, path: Path) -> Path:
        """Write the estimator artifact (file or folder) under path and return it."""
        ...


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
    # At the threshold, on the in-domain holdout (empty: trained without one).
    indomain_at_threshold: dict[str, float] = field(default_factory=dict)
    indomain_tweets: int = 0


@dataclass(frozen=True)
class PreprocessedSplit:
    """The preprocessed texts of each split."""

    train: Texts
    val: Texts
    test: Texts


def train_family(
    family: Family,
    data: pd.DataFrame | Split,
    *,
    preprocess: PreprocessConfig,
    target_precision: float,
    registry: Registry,
    artifacts_dir: Path,
    experiment: str = "airparadis",
    sample: int | None = None,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
    data_source: str | None = None,
    run_name: str | None = None,
    progress: bool = True,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    extra: InDomainData | None = None,
) -> TrainResult:
    """Train one family, evaluate, log and register it; return the new version and its figures.

    data is a loaded Sentiment140 frame (optionally downsampled to `sample` balanced tweets, then
    split with `val`, `test` and `seed`) or a ready Split, in `languages` (recorded with the
    version: serving flags tweets in others). extra: labelled airline tweets to train on too,
    with the in-domain holdout to test on (see the module's docstring). Runs and artifacts go to
    the registry's tracking URI and artifacts_dir only.
    """
    # Promotions are judged on the registry's frozen holdout: its tweets stay out of this
    # training (before sampling, so the sample keeps its size); without one yet, this run's test
    # split becomes it once the version is registered (below).
    holdout = registry.holdout()
    holdout_params: dict[str, object] = {}
    if holdout is not None:
        data, excluded = without_tweets(data, set(holdout.frame["text"]))
        holdout_params = {HOLDOUT_EXCLUDED_PARAM: excluded, "data.holdout_run": holdout.run_id}
        if extra is not None:
            extra, excluded = extra.without_texts(set(holdout.frame["text"]))
            holdout_params[f"{FEEDBACK_PARAMS}holdout_excluded"] = excluded
    splits = as_split(data, sample=sample, val=val, test=test, seed=seed)
    started = time.perf_counter()
    texts = preprocess_split(splits, preprocess, progress=progress)
    in_domain = (
        preprocess_in_domain(extra, preprocess, progress=progress) if extra is not None else None
    )
    preprocess_seconds = time.perf_counter() - started
    train = texts.train
    if extra is not None and in_domain is not None:
        weighs = bool(getattr(family, "weighs_samples", False))
        train = with_extra(train, in_domain.train, extra.weight, weighted=weighs)

    experiment_id = ensure_experiment(registry, experiment, artifacts_dir)
    with (
        mlflow_at(registry.tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name or family.name) as run,
        tempfile.TemporaryDirectory(prefix="airparadis-train-") as work_dir,
    ):
        work = Path(work_dir)
        mlflow.set_tag(FAMILY_TAG, family.name)
        mlflow.log_params(
            _run_params(family, splits, preprocess, target_precision, data_source)
            | {"data.sample": sample, "data.seed": seed, "split.val": val, "split.test": test}
            | holdout_params
        )
        _log_split(splits, work)
        _log_datasets(splits, extra, data_source, work)
        mlflow.log_metric("preprocess_seconds", preprocess_seconds)

        fit_dir = work / "fit"
        fit_dir.mkdir()
        started = time.perf_counter()
        estimator = family.fit(train, texts.val, fit_dir, experiment_id)
        train_seconds = time.perf_counter() - started
        candidate = _describe(family, estimator)

        # Calibrated on validation; the threshold and every figure below use the calibrated
        # probability, as serving does.
        val_raw = np.asarray(estimator.positive_proba(texts.val.texts), dtype=float)
        calibration = fit_calibration(texts.val.labels, val_raw, seed=seed)
        if calibration.note:
            logger.warning(calibration.note)
        val_proba = calibration.calibration.apply(val_raw)
        choice = choose_threshold(texts.val.labels, val_proba, target_precision)
        val_metrics = classification_metrics(texts.val.labels, val_proba, choice.threshold)
        test_raw = np.asarray(estimator.positive_proba(texts.test.texts), dtype=float)
        test_proba = calibration.calibration.apply(test_raw)
        at_default = classification_metrics(texts.test.labels, test_proba, 0.5)
        at_threshold = classification_metrics(texts.test.labels, test_proba, choice.threshold)
        calibration_figures = calibration_metrics(texts.test.labels, test_raw, test_proba)
        indomain_tweets = len(in_domain.holdout) if in_domain is not None else 0
        indomain = (
            in_domain_figures(estimator, calibration.calibration.apply, in_domain.holdout, choice)
            if in_domain is not None and indomain_tweets
            else {}
        )
        mlflow.log_param("candidate.chosen", candidate)
        mlflow.log_param(CALIBRATION_PARAM, calibration.calibration.method)
        mlflow.log_metrics(
            {
                "threshold": choice.threshold,
                "threshold_reached": float(choice.reached),
                "train_seconds": train_seconds,
                **_prefixed("val.cv_brier.", calibration.cv_brier),
                **_prefixed(TEST_CALIBRATION_PREFIX, calibration_figures),
                **_prefixed("val.at_threshold.", val_metrics),
                **_prefixed(TEST_AT_DEFAULT_PREFIX, at_default),
                **_prefixed(TEST_AT_THRESHOLD_PREFIX, at_threshold),
                **_prefixed(INDOMAIN_AT_THRESHOLD_PREFIX, indomain),
            }
        )
        # Live precision is estimated from this curve (shared/shift.py): measured on the test
        # split, which neither the fit, the calibration nor the threshold saw.
        mlflow.log_text(
            OperatingCurve.measure(texts.test.labels, test_proba).to_json(),
            OPERATING_CURVE_ARTIFACT,
        )
        for path in save_plots(texts.test.labels, test_proba, choice.threshold, work / "plots"):
            mlflow.log_artifact(str(path), artifact_path="plots")

        config = SentimentModelConfig(
            family=family.name,
            estimator_format=family.estimator_format,
            threshold=choice.threshold,
            preprocess=preprocess.as_params(),
            target_precision=target_precision,
            extra={"candidate": candidate},
            calibration=calibration.calibration.as_params(),
        )
        estimator_dir = work / "estimator"
        estimator_dir.mkdir()
        estimator_path = family.save(estimator, estimator_dir)
        model_info = log_sentiment_model(
            config, estimator_path, family_packages=tuple(family.packages)
        )
        serving = measure_logged_model(
            model_info.model_uri, splits.test["text"].tolist(), test_proba
        )
        mlflow.log_metrics(serving)
        version = registry.register(
            model_info.model_uri,
            tags=_version_tags(
                family.name,
                candidate,
                choice,
                target_precision,
                n_train=len(texts.train) + (len(in_domain.train) if in_domain else 0),
                figures={
                    **_prefixed(TEST_AT_THRESHOLD_PREFIX, at_threshold),
                    **_prefixed(TEST_AT_DEFAULT_PREFIX, at_default),
                    **_prefixed(TEST_CALIBRATION_PREFIX, calibration_figures),
                    **_prefixed(INDOMAIN_AT_THRESHOLD_PREFIX, indomain),
                    **serving,
                },
                calibration=calibration.calibration.method,
                languages=languages,
                indomain_tweets=indomain_tweets,
            ),
        )
        mlflow.set_tag("registered_version", version.version)
        # What drift is measured against once this version serves (stored at promotion).
        reference = build_reference(
            splits.val["text"].tolist(),
            val_proba,
            estimator_oov_rates(estimator, texts.val.texts),
            registry.model_name,
            version.version,
        )
        mlflow.log_text(to_json(reference), REFERENCE_ARTIFACT)

    if holdout is None:
        registry.set_holdout(
            holdout_of(splits.test, seed=seed),
            f"test split of version {version.version} ({data_source or 'in-memory data'})",
            experiment_id=ensure_experiment(registry, HOLDOUT_EXPERIMENT, artifacts_dir),
        )
    logger.info(
        "trained %s (%s) as %s version %s",
        family.name,
        candidate,
        registry.model_name,
        version.version,
    )
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=model_info.model_uri,
        model_name=registry.model_name,
        version=version.version,
        candidate=candidate,
        threshold=choice,
        test_at_default=at_default,
        test_at_threshold=at_threshold,
        val_at_threshold=val_metrics,
        sizes=splits.sizes(),
        preprocess_seconds=preprocess_seconds,
        train_seconds=train_seconds,
        inference_ms_per_tweet=serving["inference_ms_per_tweet"],
        inference_ms_per_tweet_single=serving["inference_ms_per_tweet_single"],
        model_size_bytes=int(serving["model_size_bytes"]),
        indomain_at_threshold=indomain,
        indomain_tweets=indomain_tweets,
    )


def as_split(
    data: pd.DataFrame | Split, *, sample: int | None, val: float, test: float, seed: int
) -> Split:
    """A ready Split as is, or a frame downsampled to `sample` balanced tweets and split."""
    if isinstance(data, Split):
        if sample is not None:
            raise ValueError("sample applies to a frame, not to a ready Split")
        return data
    frame = balanced_sample(data, sample, seed=seed) if sample is not None else data
    return split(frame, val=val, test=test, seed=seed)


def without_tweets(data: pd.DataFrame | Split, texts: set[str]) -> tuple[pd.DataFrame | Split, int]:
    """data without the tweets whose text is in texts (the holdout), and how many were dropped.
    A ready Split keeps its test part: only what the model fits and is tuned on is filtered."""

    def kept(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame["text"].isin(texts)]

    if isinstance(data, Split):
        train, val = kept(data.train), kept(data.val)
        dropped = len(data.train) - len(train) + len(data.val) - len(val)
        return Split(train=train, val=val, test=data.test), dropped
    remaining = kept(data)
    return remaining, len(data) - len(remaining)


def holdout_of(test: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """The text and label of a test split, at most HOLDOUT_MAX_TWEETS of them (drawn by seed)."""
    tweets = test[["text", "label"]]
    if len(tweets) > HOLDOUT_MAX_TWEETS:
        tweets = tweets.sample(n=HOLDOUT_MAX_TWEETS, random_state=seed)
    return tweets


def preprocess_split(
    splits: Split, config: PreprocessConfig, *, progress: bool = True
) -> PreprocessedSplit:
    """Run the shared preprocessing over every split (with a progress bar per split)."""
    preprocessor = TextPreprocessor(config)
    return PreprocessedSplit(
        train=preprocess_frame(splits.train, preprocessor, "train", progress=progress),
        val=preprocess_frame(splits.val, preprocessor, "val", progress=progress),
        test=preprocess_frame(splits.test, preprocessor, "test", progress=progress),
    )


@dataclass(frozen=True)
class PreprocessedInDomain:
    """The preprocessed texts of the labelled airline tweets: to train on, and to test on."""

    train: Texts
    holdout: Texts


def preprocess_in_domain(
    extra: InDomainData, config: PreprocessConfig, *, progress: bool = True
) -> PreprocessedInDomain:
    preprocessor = TextPreprocessor(config)
    return PreprocessedInDomain(
        train=preprocess_frame(extra.train, preprocessor, "airline train", progress=progress),
        holdout=preprocess_frame(extra.holdout, preprocessor, "airline holdout", progress=progress),
    )


def preprocess_frame(
    frame: pd.DataFrame, preprocessor: TextPreprocessor, name: str, *, progress: bool = True
) -> Texts:
    """The preprocessed texts and the labels of a frame (columns text, label)."""
    tweets = tqdm(
        frame["text"], desc=f"preprocess {name}", unit="tweet", disable=None if progress else True
    )
    return Texts(
        texts=[preprocessor(tweet) for tweet in tweets],
        labels=frame["label"].to_numpy(dtype=np.int64),
    )


def with_extra(train: Texts, extra: Texts, weight: float, *, weighted: bool) -> Texts:
    """The training tweets and the extra ones after them. weighted: each extra tweet weighs
    `weight` (a Sentiment140 tweet 1); else each comes round(weight) times, at least once."""
    if weighted:
        return Texts(
            texts=train.texts + extra.texts,
            labels=np.concatenate([train.labels, extra.labels]),
            weights=np.concatenate([np.ones(len(train)), np.full(len(extra), float(weight))]),
        )
    copies = max(1, round(weight))
    return Texts(
        texts=train.texts + extra.texts * copies,
        labels=np.concatenate([train.labels, *([extra.labels] * copies)]),
    )


def in_domain_figures(
    estimator: ProbabilityEstimator,
    calibrate: Callable[[np.ndarray], np.ndarray],
    holdout: Texts,
    choice: ThresholdChoice,
) -> dict[str, float]:
    """The metrics at the version's threshold on the in-domain holdout, scored as the test
    split is (calibrated probability)."""
    raw = np.asarray(estimator.positive_proba(holdout.texts), dtype=float)
    return classification_metrics(holdout.labels, calibrate(raw), choice.threshold)


def measure_logged_model(
    model_uri: str, raw_test: list[str], expected: np.ndarray
) -> dict[str, float]:
    """Load the logged model back as serving will, check it agrees with training, time it.

    expected holds the in-memory estimator's probabilities for raw_test once preprocessed;
    RuntimeError when the served model disagrees (train/serve skew).
    """
    with tempfile.TemporaryDirectory(prefix="airparadis-model-") as download_dir:
        local_path = mlflow.artifacts.download_artifacts(model_uri, dst_path=download_dir)
        size = sum(path.stat().st_size for path in Path(local_path).rglob("*") if path.is_file())
        model = mlflow.pyfunc.load_model(local_path).unwrap_python_model()
    if not isinstance(model, SentimentModel):
        raise TypeError(f"logged model loads as {type(model).__name__}, not SentimentModel")
    started = time.perf_counter()
    served = model.predict_proba(raw_test)
    batch_ms = (time.perf_counter() - started) * 1000 / len(raw_test)
    gap = float(np.max(np.abs(served - expected))) if len(raw_test) else 0.0
    if not gap <= SKEW_TOLERANCE:
        raise RuntimeError(
            f"the logged model disagrees with the trained one (train/serve skew): "
            f"probabilities differ by up to {gap:.2e} on the test tweets"
        )
    singles = raw_test[:_SINGLE_TWEET_TIMINGS]
    started = time.perf_counter()
    for tweet in singles:
        model.predict_proba([tweet])
    single_ms = (time.perf_counter() - started) * 1000 / max(len(singles), 1)
    return {
        "inference_ms_per_tweet": batch_ms,
        "inference_ms_per_tweet_single": single_ms,
        "model_size_bytes": float(size),
    }


def _describe(family: Family, estimator: ProbabilityEstimator) -> str:
    describe = getattr(family, "describe", None)
    return str(describe(estimator)) if callable(describe) else family.name


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{key}": value for key, value in metrics.items()}


def _run_params(
    family: Family,
    splits: Split,
    preprocess: PreprocessConfig,
    target_precision: float,
    data_source: str | None,
) -> dict[str, object]:
    return {
        "family": family.name,
        "data.source": data_source or "in-memory",
        **{f"data.n_{name}": size for name, size in splits.sizes().items()},
        "target_precision": target_precision,
        **preprocess.as_params(),
        **family.params(),
    }


def _version_tags(
    family: str,
    candidate: str,
    choice: ThresholdChoice,
    target_precision: float,
    *,
    n_train: int,
    figures: dict[str, float],
    calibration: str,
    languages: Sequence[str],
    indomain_tweets: int = 0,
) -> dict[str, str]:
    indomain = {INDOMAIN_TWEETS_TAG: str(indomain_tweets)} if indomain_tweets else {}
    return indomain | {
        LANGUAGES_TAG: ",".join(languages),
        CALIBRATION_TAG: calibration,
        THRESHOLD_TAG: str(choice.threshold),
        TARGET_PRECISION_TAG: str(target_precision),
        THRESHOLD_REACHED_TAG: str(choice.reached).lower(),
        FAMILY_TAG: family,
        CANDIDATE_TAG: candidate,
        DATA_SIZE_TAG: str(n_train),
        **{key: repr(float(value)) for key, value in figures.items()},
    }


def _log_split(splits: Split, work: Path) -> None:
    _log_frame(splits.assignments(), SPLIT_ARTIFACT, work)


def _log_frame(frame: pd.DataFrame, artifact: str, work: Path) -> None:
    path = work / Path(artifact).name
    frame.to_csv(path, index=False)
    mlflow.log_artifact(str(path), artifact_path=str(Path(artifact).parent))


def _log_datasets(
    splits: Split, extra: InDomainData | None, data_source: str | None, work: Path
) -> None:
    """The tweets of the run as MLflow datasets (inputs of the run), with their row counts."""
    sentiment140 = pd.concat([splits.train, splits.val, splits.test])[["text", "label"]]
    _log_input(sentiment140, SENTIMENT140_DATASET, data_source, "training")
    params: dict[str, object] = {f"data.{SENTIMENT140_DATASET}.rows": len(sentiment140)}
    if extra is not None:
        for part, context in ((extra.train, "training"), (extra.holdout, "evaluation")):
            if len(part):
                _log_input(part[["text", "label"]], FEEDBACK_DATASET, extra.source, context)
        params |= {
            f"{FEEDBACK_PARAMS}source": extra.source,
            f"{FEEDBACK_PARAMS}rows": len(extra.train) + len(extra.holdout),
            f"{FEEDBACK_PARAMS}train_rows": len(extra.train),
            f"{FEEDBACK_PARAMS}holdout_rows": len(extra.holdout),
            f"{FEEDBACK_PARAMS}same_text_as_holdout": extra.same_text_as_holdout,
            f"{FEEDBACK_PARAMS}weight": extra.weight,
        }
        _log_frame(extra.assignments(), INDOMAIN_SPLIT_ARTIFACT, work)
    mlflow.log_params(params)


def _log_input(frame: pd.DataFrame, name: str, source: str | None, context: str) -> None:
    with warnings.catch_warnings():
        # MLflow finds two equivalent source types for a local path, picks one and warns; and
        # warns that the integer labels could not hold a missing value (they hold none).
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = (
            from_pandas(frame, name=name, targets="label")
            if source is None
            else from_pandas(frame, source=source, name=name, targets="label")
        )
        mlflow.log_input(dataset, context)
