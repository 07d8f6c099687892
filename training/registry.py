"""Compare registered versions, promote by the business rule, evaluate a version on new data
and rebuild its drift reference: the rules and figures around the registry (shared/registry.py,
which reads, loads, registers and moves aliases).

`promote_if_better` applies the promotion rule first: a version whose test precision at its
threshold is below the champion's does not replace it unless forced.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from shared.drift import build_reference
from shared.estimators.base import ModelNotFoundError
from shared.registry import FAMILY_TAG, THRESHOLD_TAG, Promotion, Registry
from training.evaluate import classification_metrics

logger = logging.getLogger(__name__)

# Tags of a registered version besides those of shared.models (threshold, family, target).
CANDIDATE_TAG = "candidate"
THRESHOLD_REACHED_TAG = "threshold_reached"
DATA_SIZE_TAG = "data.n_train"
# Test figures are run metrics, copied onto the version's tags so the registry alone compares.
TEST_AT_THRESHOLD_PREFIX = "test.at_threshold."
TEST_AT_DEFAULT_PREFIX = "test.at_0.5."
# Where training logs the split of a run (training/experiment.py).
SPLIT_ARTIFACT = "data/split.csv.gz"

# --- Comparing versions -------------------------------------------------------------------------

# Test figures at the version's threshold, in the order `models compare` shows them.
TEST_FIGURES = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


class PromotionRefusedError(Exception):
    """A promotion the business rule refuses; `check` says why."""

    def __init__(self, check: PromotionCheck) -> None:
        super().__init__(check.reason)
        self.check = check


@dataclass(frozen=True)
class VersionSummary:
    """A registered version with the figures its training run recorded (None when missing)."""

    version: str
    aliases: tuple[str, ...]
    family: str | None
    candidate: str | None
    n_train: int | None
    threshold: float | None
    test_at_threshold: Mapping[str, float]
    accuracy_at_default: float | None
    latency_ms: float | None
    latency_ms_single: float | None
    size_bytes: float | None
    created: datetime | None
    run_id: str | None

    @property
    def precision(self) -> float | None:
        """Test precision of the positive class at the version's threshold: the promotion rule."""
        return self.test_at_threshold.get("precision")


@dataclass(frozen=True)
class PromotionCheck:
    """Whether a version may become champion, and why."""

    allowed: bool
    reason: str
    candidate: str
    champion: str | None = None


def summarize_version(registry: Registry, version: str) -> VersionSummary:
    """The figures of one version: its training run's metrics, else the copies in its tags."""
    client = registry.client
    try:
        found = client.get_model_version(registry.model_name, str(version))
    except MlflowException as error:
        raise ModelNotFoundError(
            f"no version {version} of model {registry.model_name!r} at {registry.tracking_uri}"
        ) from error
    return _summary(client, found)


def compare_versions(registry: Registry) -> list[VersionSummary]:
    """One summary per registered version, oldest first."""
    client = registry.client
    versions = registry.versions()
    return [_summary(client, v) for v in sorted(versions, key=lambda v: int(v.version))]


def check_promotion(candidate: VersionSummary, champion: VersionSummary | None) -> PromotionCheck:
    """The promotion rule: a candidate whose test precision at its threshold is below the
    champion's does not replace it (a lower precision lets more bad buzz through)."""
    if champion is None:
        return PromotionCheck(True, "there is no champion yet", candidate.version)
    if champion.version == candidate.version:
        return PromotionCheck(
            True, f"version {candidate.version} is already the champion", candidate.version
        )
    challenger, holder = candidate.precision, champion.precision
    if challenger is None:
        return PromotionCheck(
            False,
            f"version {candidate.version} has no recorded test precision to compare with "
            f"champion version {champion.version}",
            candidate.version,
            champion.version,
        )
    if holder is None:
        return PromotionCheck(
            True,
            f"champion version {champion.version} has no recorded test precision",
            candidate.version,
            champion.version,
        )
    if challenger < holder:
        return PromotionCheck(
            False,
            f"version {candidate.version} has test precision {challenger:.4f} at its threshold, "
            f"below champion version {champion.version}'s {holder:.4f}",
            candidate.version,
            champion.version,
        )
    return PromotionCheck(
        True,
        f"test precision {challenger:.4f} >= champion version {champion.version}'s {holder:.4f}",
        candidate.version,
        champion.version,
    )


def promote_if_better(
    registry: Registry, version: str, *, force: bool = False
) -> tuple[Promotion, PromotionCheck]:
    """Make `version` the champion when check_promotion allows it (or force is set), and
    announce it on the registry's bus.

    PromotionRefusedError when the rule refuses and force is not set.
    """
    candidate = summarize_version(registry, version)
    holder = registry.champion()
    champion = summarize_version(registry, holder.version) if holder else None
    check = check_promotion(candidate, champion)
    if not check.allowed and not force:
        raise PromotionRefusedError(check)
    if not check.allowed:
        logger.warning("promotion forced despite the rule: %s", check.reason)
    return registry.promote(version), check


def _summary(client: mlflow.MlflowClient, version: ModelVersion) -> VersionSummary:
    tags = dict(version.tags or {})
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    if version.run_id:
        try:
            run = client.get_run(version.run_id)
            metrics, params = dict(run.data.metrics), dict(run.data.params)
        except MlflowException as error:
            logger.warning(
                "run %s of version %s is unreadable: %s", version.run_id, version.version, error
            )

    def figure(key: str) -> float | None:
        if key in metrics:
            return float(metrics[key])
        return _float(tags.get(key))

    at_threshold = {
        name: value
        for name in TEST_FIGURES
        if (value := figure(f"{TEST_AT_THRESHOLD_PREFIX}{name}")) is not None
    }
    n_train = tags.get(DATA_SIZE_TAG) or params.get(DATA_SIZE_TAG)
    return VersionSummary(
        version=str(version.version),
        aliases=tuple(version.aliases or ()),
        family=tags.get(FAMILY_TAG),
        candidate=tags.get(CANDIDATE_TAG),
        n_train=int(n_train) if n_train else None,
        threshold=_float(tags.get(THRESHOLD_TAG)),
        test_at_threshold=at_threshold,
        accuracy_at_default=figure(f"{TEST_AT_DEFAULT_PREFIX}accuracy"),
        latency_ms=figure("inference_ms_per_tweet"),
        latency_ms_single=figure("inference_ms_per_tweet_single"),
        size_bytes=figure("model_size_bytes"),
        created=datetime.fromtimestamp(version.creation_timestamp / 1000)
        if version.creation_timestamp
        else None,
        run_id=version.run_id,
    )


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# --- Evaluating a version on new data -----------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """A registered version scored on labelled tweets, at 0.5 and at its own threshold."""

    version: str
    threshold: float
    n_tweets: int
    at_default: dict[str, float]
    at_threshold: dict[str, float]


def evaluate_version(registry: Registry, version: str, frame: pd.DataFrame) -> Evaluation:
    """Load the version as serving does and score frame (columns text, label 0/1)."""
    model = registry.load(version)
    proba = model.predict_proba(frame["text"].astype(str).tolist())
    labels = frame["label"].to_numpy()
    return Evaluation(
        version=model.version,
        threshold=model.threshold,
        n_tweets=len(frame),
        at_default=classification_metrics(labels, proba, 0.5),
        at_threshold=classification_metrics(labels, proba, model.threshold),
    )


# --- Rebuilding the drift reference of a version ------------------------------------------------


def rebuild_reference(
    registry: Registry, version: str, frame: pd.DataFrame
) -> list[dict[str, object]]:
    """Build the drift reference of a registered version from its own validation split, read
    back from `data/split.csv.gz` of its run and taken from `frame` (the Sentiment140 file it
    was trained on, loaded whole), and log it into the version's run.

    ValueError when the split does not match `frame` (another file, or one changed since).
    """
    info = registry.version(version)
    if info.run_id is None:
        raise ValueError(f"version {version} of {registry.model_name!r} has no run with a split")
    data = registry.read_artifact(info.run_id, SPLIT_ARTIFACT)
    assignments = pd.read_csv(io.BytesIO(data), compression="gzip")
    val = assignments[assignments["split"] == "val"]
    missing = set(val["source_row"]) - set(frame.index)
    if missing:
        raise ValueError(
            f"{len(missing)} validation rows of version {version} are not in this file: "
            "pass the file it was trained on"
        )
    tweets = frame.loc[val["source_row"]]
    if (tweets["label"].to_numpy() != val["label"].to_numpy()).any():
        raise ValueError(
            f"the labels of version {version}'s validation rows differ in this file: "
            "pass the file it was trained on"
        )
    model = registry.load(version)
    texts = tweets["text"].astype(str).tolist()
    scores = model.scores(texts)
    rows = build_reference(
        texts, scores.probabilities, scores.oov_rates, registry.model_name, version
    )
    registry.log_reference(version, rows)
    return rows
