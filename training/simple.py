"""The simple family: bag of words or TF-IDF word 1-2 grams + a scikit-learn classifier.

Each candidate (vectorizer x classifier) gets a cross-validated grid search, refitted on
precision among several scorers, in a nested MLflow run that logs its best params and CV scores.
The winner is the candidate with the best recall at the target precision on validation; the
shared flow (training/experiment.py) then chooses its threshold, tests, logs and registers it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, precision_score
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from shared.estimators.base import SKLEARN_JOBLIB, ProbabilityEstimator
from shared.estimators.sklearn import SklearnEstimator
from shared.preprocessing import PreprocessConfig
from shared.registry import Registry
from training.data import Split
from training.evaluate import ThresholdChoice, choose_threshold, classification_metrics
from training.experiment import Texts, TrainResult, train_family

logger = logging.getLogger(__name__)

FAMILY = "simple"
DEFAULT_CANDIDATES = ("logreg",)
DEFAULT_VECTORIZERS = ("tfidf",)

# "full": each classifier's grid; "small": one point per classifier (first start, smoke runs).
GridSize = Literal["full", "small"]

# Scored in cross-validation; the search refits the parameters with the best precision.
SCORERS: dict[str, Any] = {
    # zero_division=0: a fold where a candidate predicts no positive scores 0, without a warning.
    "precision": make_scorer(precision_score, zero_division=0),
    "recall": "recall",
    "f1": "f1",
    "roc_auc": "roc_auc",
    "pr_auc": "average_precision",
}
REFIT_SCORER = "precision"


@dataclass(frozen=True)
class VectorizerSpec:
    """How tweets become features. The preprocessor decides case and tokens, so both
    vectorizers only split on whitespace."""

    name: str
    make: Callable[[int, int | None], Any]  # (min_df, max_features) -> unfitted vectorizer
    label: str


def _tfidf(min_df: int, max_features: int | None) -> TfidfVectorizer:
    return TfidfVectorizer(
        ngram_range=(1, 2),
        min_df=min_df,
        max_features=max_features,
        lowercase=False,
        token_pattern=r"\S+",
        sublinear_tf=True,
        dtype=np.float32,
    )


def _bag_of_words(min_df: int, max_features: int | None) -> CountVectorizer:
    return CountVectorizer(
        ngram_range=(1, 2),
        min_df=min_df,
        max_features=max_features,
        lowercase=False,
        token_pattern=r"\S+",
        dtype=np.float32,
    )


VECTORIZERS: dict[str, VectorizerSpec] = {
    "tfidf": VectorizerSpec("tfidf", _tfidf, "TfidfVectorizer"),
    "bow": VectorizerSpec("bow", _bag_of_words, "CountVectorizer"),
}


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier with predict_proba and the grids searched for it (keys of the `clf` step)."""

    name: str
    make: Callable[[int], Any]  # seed -> unfitted classifier
    label: str
    full_grid: dict[str, list[Any]]
    small_grid: dict[str, list[Any]]

    def grid(self, size: GridSize) -> dict[str, list[Any]]:
        chosen = self.full_grid if size == "full" else self.small_grid
        return {f"clf__{key}": values for key, values in chosen.items()}


def _logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def _linear_svm(seed: int) -> CalibratedClassifierCV:
    # LinearSVC has no predict_proba; sigmoid calibration on internal folds gives one.
    return CalibratedClassifierCV(
        LinearSVC(C=0.1, random_state=seed), method="sigmoid", cv=3, ensemble=False
    )


def _naive_bayes(seed: int) -> MultinomialNB:
    return MultinomialNB(alpha=1.0)


def _random_forest(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=100, min_samples_leaf=2, max_features="sqrt", n_jobs=2, random_state=seed
    )


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "logreg": ClassifierSpec(
        "logreg",
        _logistic_regression,
        "LogisticRegression",
        full_grid={"C": [0.3, 1.0, 3.0]},
        small_grid={"C": [1.0]},
    ),
    "svm": ClassifierSpec(
        "svm",
        _linear_svm,
        "CalibratedClassifierCV(LinearSVC)",
        full_grid={"estimator__C": [0.03, 0.1, 0.3]},
        small_grid={"estimator__C": [0.1]},
    ),
    "nb": ClassifierSpec(
        "nb",
        _naive_bayes,
        "MultinomialNB",
        full_grid={"alpha": [0.3, 1.0, 3.0]},
        small_grid={"alpha": [1.0]},
    ),
    "rf": ClassifierSpec(
        "rf",
        _random_forest,
        "RandomForestClassifier",
        # One point even in the full search: on 100k tweets each forest takes minutes on 2 cores.
        full_grid={"n_estimators": [100], "min_samples_leaf": [5]},
        small_grid={"n_estimators": [50], "min_samples_leaf": [2]},
    ),
}


@dataclass(frozen=True)
class SearchedCandidate:
    """One vectorizer x classifier after its search, judged on validation."""

    name: str
    pipeline: Pipeline
    choice: ThresholdChoice
    val_metrics: dict[str, float]


class SimpleFamily:
    """Searches every vectorizer x classifier asked for and keeps the best one on validation."""

    name = FAMILY
    estimator_format = SKLEARN_JOBLIB
    packages: tuple[str, ...] = ("scikit-learn",)
    # Every classifier here takes sample_weight: extra data weighs in the fit (experiment.py).
    weighs_samples = True

    def __init__(
        self,
        *,
        target_precision: float,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        vectorizers: Sequence[str] = DEFAULT_VECTORIZERS,
        grid: GridSize = "full",
        cv: int = 3,
        n_jobs: int = 1,
        min_df: int = 2,
        max_features: int | None = None,
        seed: int = 42,
    ) -> None:
        self.candidates = _known("candidate", candidates, CLASSIFIERS)
        self.vectorizers = _known("vectorizer", vectorizers, VECTORIZERS)
        self.target_precision = target_precision
        self.grid: GridSize = grid
        self.cv = cv
        self.n_jobs = n_jobs
        self.min_df = min_df
        self.max_features = max_features
        self.seed = seed
        self.searched: list[SearchedCandidate] = []

    def params(self) -> dict[str, object]:
        return {
            "candidates": ",".join(self.candidates),
            "vectorizers": ",".join(self.vectorizers),
            "search.grid": self.grid,
            "search.cv": self.cv,
            "search.refit": REFIT_SCORER,
            "search.scorers": ",".join(SCORERS),
            "vectorizer.ngram_range": "1-2",
            "vectorizer.min_df": self.min_df,
            "vectorizer.max_features": self.max_features,
        }

    def fit(self, train: Texts, val: Texts, work: Path, experiment_id: str) -> ProbabilityEstimator:
        self.searched = [
            self._search(vectorizer, classifier, train, val, work, experiment_id)
            for vectorizer in self.vectorizers
            for classifier in self.candidates
        ]
        best = max(self.searched, key=validation_rank)
        logger.info("simple family: %s wins on validation", best.name)
        return SklearnEstimator(best.pipeline)

    def save(self, estimator: ProbabilityEstimator, path: Path) -> Path:
        if not isinstance(estimator, SklearnEstimator):
            raise TypeError(f"expected a SklearnEstimator, got {type(estimator).__name__}")
        target = path / "estimator.joblib"
        estimator.save(target)
        return target

    def describe(self, estimator: ProbabilityEstimator) -> str:
        """The name of the candidate behind estimator (vectorizer-classifier)."""
        classifier = getattr(estimator, "classifier", None)
        for searched in self.searched:
            if classifier is searched.pipeline:
                return searched.name
        return FAMILY

    def _search(
        self,
        vectorizer: str,
        classifier: str,
        train: Texts,
        val: Texts,
        work: Path,
        experiment_id: str,
    ) -> SearchedCandidate:
        vec, clf = VECTORIZERS[vectorizer], CLASSIFIERS[classifier]
        name = f"{vectorizer}-{classifier}"
        # Without experiment_id a nested run lands in MLflow's default experiment, not its parent's.
        with mlflow.start_run(run_name=name, nested=True, experiment_id=experiment_id):
            mlflow.log_params(
                {
                    "candidate": name,
                    "vectorizer": vec.label,
                    "clf": clf.label,
                    "search.grid": self.grid,
                    "search.cv": self.cv,
                    "vectorizer.min_df": self.min_df,
                    "vectorizer.max_features": self.max_features,
                }
            )
            search = GridSearchCV(
                # The cache keeps each fold's fitted vectorizer across the grid's points.
                Pipeline(
                    [
                        ("vec", vec.make(self.min_df, self.max_features)),
                        ("clf", clf.make(self.seed)),
                    ],
                    memory=str(work / "cache" / name),
                ),
                clf.grid(self.grid),
                scoring=SCORERS,
                refit=REFIT_SCORER,
                cv=StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed),
                n_jobs=self.n_jobs,
                error_score="raise",
            )
            points = len(ParameterGrid(search.param_grid))
            logger.info("searching %s: %d grid points x %d folds", name, points, self.cv)
            started = time.perf_counter()
            # Each fold's fit gets the weights of its tweets; the CV scores stay unweighted.
            weighted = {} if train.weights is None else {"clf__sample_weight": train.weights}
            search.fit(train.texts, train.labels, **weighted)
            search_seconds = time.perf_counter() - started
            pipeline: Pipeline = search.best_estimator_
            pipeline.set_params(memory=None)  # the cache folder is gone after training
            proba = SklearnEstimator(pipeline).positive_proba(val.texts)
            choice = choose_threshold(val.labels, proba, self.target_precision)
            val_metrics = classification_metrics(val.labels, proba, choice.threshold)
            mlflow.log_params({f"best.{key}": value for key, value in search.best_params_.items()})
            mlflow.log_metrics(
                {
                    "search_seconds": search_seconds,
                    "threshold": choice.threshold,
                    "threshold_reached": float(choice.reached),
                    **_cv_scores(search),
                    **{f"val.at_threshold.{key}": value for key, value in val_metrics.items()},
                }
            )
            logger.info(
                "%s: best %s, CV precision %.4f, validation recall %.4f at precision %.4f (%.0f s)",
                name,
                search.best_params_,
                search.best_score_,
                choice.recall,
                choice.precision,
                search_seconds,
            )
            results = work / f"{name}-cv_results.csv"
            pd.DataFrame(search.cv_results_).drop(columns="params").to_csv(results, index=False)
            mlflow.log_artifact(str(results), artifact_path="search")
        return SearchedCandidate(name, pipeline, choice, val_metrics)


def validation_rank(candidate: SearchedCandidate) -> tuple[bool, float, float]:
    """Reaching the target first, then recall there (or precision when not reached), then PR AUC."""
    choice = candidate.choice
    pr_auc = candidate.val_metrics["pr_auc"]
    return (
        choice.reached,
        choice.recall if choice.reached else choice.precision,
        pr_auc if pr_auc == pr_auc else 0.0,  # NaN (one class in validation) ranks last
    )


def train_simple(
    data: pd.DataFrame | Split,
    *,
    preprocess: PreprocessConfig,
    target_precision: float,
    registry: Registry,
    artifacts_dir: Path,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    vectorizers: Sequence[str] = DEFAULT_VECTORIZERS,
    grid: GridSize = "full",
    cv: int = 3,
    n_jobs: int = 1,
    min_df: int = 2,
    max_features: int | None = None,
    seed: int = 42,
    **flow: Any,
) -> TrainResult:
    """Train, evaluate, log and register a simple model; return the new version and its figures.

    `flow` takes the other keyword arguments of training.experiment.train_family (experiment,
    sample, val, test, data_source, run_name, progress, languages, extra).
    """
    family = SimpleFamily(
        target_precision=target_precision,
        candidates=candidates,
        vectorizers=vectorizers,
        grid=grid,
        cv=cv,
        n_jobs=n_jobs,
        min_df=min_df,
        max_features=max_features,
        seed=seed,
    )
    return train_family(
        family,
        data,
        preprocess=preprocess,
        target_precision=target_precision,
        registry=registry,
        artifacts_dir=artifacts_dir,
        seed=seed,
        **flow,
    )


def _cv_scores(search: GridSearchCV) -> dict[str, float]:
    best = search.best_index_
    scores = {}
    for scorer in SCORERS:
        scores[f"cv.{scorer}"] = float(search.cv_results_[f"mean_test_{scorer}"][best])
        scores[f"cv.{scorer}_std"] = float(search.cv_results_[f"std_test_{scorer}"][best])
    return scores


def _known(kind: str, names: Sequence[str], known: dict[str, Any]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"unknown or no {kind}s {list(names)}; known: {sorted(known)}")
    return tuple(dict.fromkeys(names))
