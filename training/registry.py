"""Compare registered versions, promote by the business rule, evaluate a version on new data
and rebuild its drift reference: the rules and figures around the registry (shared/registry.py,
which reads, loads, registers and moves aliases).

`promote_if_better` applies the promotion rule first: a version whose precision at its threshold
is below the champion's does not replace it unless forced. Both are scored on the same labelled
tweets, the registry's frozen holdout (or a file given instead); only when there is none are the
test figures each version recorded on its own test split compared.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from shared.drift import build_reference
from shared.estimators.base import ModelNotFoundError
from shared.registry import (
    DEFAULT_LANGUAGES,
    FAMILY_TAG,
    THRESHOLD_TAG,
    Holdout,
    Promotion,
    Registry,
    languages_of,
)
from shared.shift import OperatingCurve
from training.data import load_sentiment140
from training.evaluate import classification_metrics

logger = logging.getLogger(__name__)

# Tags of a registered version besides those of shared.models (threshold, family, target).
CANDIDATE_TAG = "candidate"
THRESHOLD_REACHED_TAG = "threshold_reached"
DATA_SIZE_TAG = "data.n_train"
# Test figures are run metrics, copied onto the version's tags so the registry alone compares.
TEST_AT_THRESHOLD_PREFIX = "test.at_threshold."
TEST_AT_DEFAULT_PREFIX = "test.at_0.5."
# Calibration: the method (param and tag) and its figures on the test split (ECE, Brier).
CALIBRATION_PARAM = "calibration"
CALIBRATION_TAG = "calibration"
TEST_CALIBRATION_PREFIX = "test.calibration."
# Where training logs the split of a run (training/experiment.py).
SPLIT_ARTIFACT = "data/split.csv.gz"
# In-domain figures: a version trained with labelled airline reports (training/feedback.py),
# scored at its threshold on the most recent of them, which it never trained on; copied onto its
# tags like the test figures. The split of those reports is logged beside the other one.
INDOMAIN_AT_THRESHOLD_PREFIX = "indomain.at_threshold."
INDOMAIN_TWEETS_TAG = "indomain.tweets"
INDOMAIN_SPLIT_ARTIFACT = "data/indomain_split.csv.gz"

# --- Comparing versions -------------------------------------------------------------------------

# Test figures at the version's threshold, in the order `models compare` shows them.
TEST_FIGURES = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


class PromotionRefusedError(Exception):
    """A promotion the business rule refuses; `check` says why, `decision` what it judged on."""

    def __init__(self, decision: PromotionDecision) -> None:
        super().__init__(decision.check.reason)
        self.decision = decision
        self.check = decision.check


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
    # Calibration of the probability (training/experiment.py): the method, and the expected
    # calibration error and Brier score of the calibrated probability on the test split.
    calibration: str | None = None
    ece: float | None = None
    brier: float | None = None
    # The languages of its training data (shared/registry.py, LANGUAGES_TAG).
    languages: tuple[str, ...] = DEFAULT_LANGUAGES

    @property
    def precision(self) -> float | None:
        """Test precision of the positive class at the version's threshold: the promotion rule."""
        return self.test_at_threshold.get("precision")


class Scored(Protocol):
    """What the promotion rule reads of a version: its precision at its own threshold, on its
    test split (VersionSummary) or on a common holdout (Evaluation)."""

    @property
    def version(self) -> str: ...

    @property
    def precision(self) -> float | None: ...


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


def check_promotion(
    candidate: Scored, champion: Scored | None, *, measured_on: str = "test"
) -> PromotionCheck:
    """The promotion rule: a candidate whose precision at its threshold is below the champion's
    does not replace it (a lower precision lets more bad buzz through). measured_on names where
    both precisions were measured, for the reason: "test" (each its own split) or "holdout"."""
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
            f"version {candidate.version} has no recorded {measured_on} precision to compare with "
            f"champion version {champion.version}",
            candidate.version,
            champion.version,
        )
    if holder is None:
        return PromotionCheck(
            True,
            f"champion version {champion.version} has no recorded {measured_on} precision",
            candidate.version,
            champion.version,
        )
    if challenger < holder:
        return PromotionCheck(
            False,
            f"version {candidate.version} has {measured_on} precision {challenger:.4f} at its "
            f"threshold, below champion version {champion.version}'s {holder:.4f}",
            candidate.version,
            champion.version,
        )
    return PromotionCheck(
        True,
        f"{measured_on} precision {challenger:.4f} >= champion version {champion.version}'s "
        f"{holder:.4f}",
        candidate.version,
        champion.version,
    )


@dataclass(frozen=True)
class HoldoutComparison:
    """A candidate and the champion (None: there is none) scored on the same holdout, each at
    its own threshold."""

    holdout: Holdout
    candidate: Evaluation
    champion: Evaluation | None

    def check(self) -> PromotionCheck:
        return check_promotion(self.candidate, self.champion, measured_on="holdout")

    def figures(self) -> str:
        """The figures beside the precisions, and what they were measured on, in one phrase."""
        where = f"{len(self.holdout):,} holdout tweets from {self.holdout.source}"
        roc_auc = self.candidate.at_threshold["roc_auc"]
        if self.champion is None or self.champion.version == self.candidate.version:
            return (
                f"holdout precision {self.candidate.precision:.4f}, ROC AUC {roc_auc:.4f} "
                f"on {where}"
            )
        return f"ROC AUC {roc_auc:.4f} vs {self.champion.at_threshold['roc_auc']:.4f} on {where}"


@dataclass(frozen=True)
class PromotionDecision:
    """What the promotion rule said, and what it judged on (comparison None: the test figures
    each version recorded, as no common holdout was there)."""

    check: PromotionCheck
    comparison: HoldoutComparison | None

    def reason(self) -> str:
        """Why the version is promoted, as kept with the alias change."""
        measured = (
            self.comparison.figures()
            if self.comparison is not None
            else "recorded test figures, not on a common holdout"
        )
        forced = "" if self.check.allowed else "forced: "
        return f"{forced}{self.check.reason} ({measured})"


def compare_on_holdout(
    registry: Registry, candidate: str, champion: str | None, holdout: Holdout
) -> HoldoutComparison:
    """Load both versions as serving does and score the holdout with each."""
    scored = evaluate_version(registry, candidate, holdout.frame)
    if champion is None or str(champion) == scored.version:
        held = None if champion is None else scored
    else:
        held = evaluate_version(registry, champion, holdout.frame)
    return HoldoutComparison(holdout, scored, held)


def read_holdout(path: Path) -> Holdout:
    """Labelled tweets from a file (Sentiment140's forms) to judge promotions on instead of the
    registry's holdout."""
    return Holdout.of(load_sentiment140(path), str(path))


def decide_promotion(
    registry: Registry, version: str, holdout: Holdout | None = None
) -> PromotionDecision:
    """Apply the promotion rule to `version` against the champion: on holdout, else on the
    registry's frozen holdout, else (none there) on the test figures each version recorded."""
    registry.version(version)  # ModelNotFoundError when there is no such one
    holder = registry.champion()
    holdout = holdout if holdout is not None else registry.holdout()
    if holdout is not None:
        comparison = compare_on_holdout(
            registry, version, holder.version if holder else None, holdout
        )
        return PromotionDecision(comparison.check(), comparison)
    candidate = summarize_version(registry, version)
    champion = summarize_version(registry, holder.version) if holder else None
    return PromotionDecision(check_promotion(candidate, champion), None)


def promote_if_better(
    registry: Registry, version: str, *, force: bool = False, holdout: Holdout | None = None
) -> tuple[Promotion, PromotionDecision]:
    """Make `version` the champion when the promotion rule allows it (or force is set), keep the
    reason with the alias, and announce it on the registry's bus. Judged on holdout if given,
    else as decide_promotion says.

    PromotionRefusedError when the rule refuses and force is not set.
    """
    decision = decide_promotion(registry, version, holdout)
    if not decision.check.allowed and not force:
        raise PromotionRefusedError(decision)
    if not decision.check.allowed:
        logger.warning("promotion forced despite the rule: %s", decision.check.reason)
    return registry.promote(version, reason=decision.reason()), decision


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
        languages=languages_of(tags),
        calibration=tags.get(CALIBRATION_TAG) or params.get(CALIBRATION_PARAM),
        ece=figure(f"{TEST_CALIBRATION_PREFIX}ece"),
        brier=figure(f"{TEST_CALIBRATION_PREFIX}brier"),
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

    @property
    def precision(self) -> float | None:
        """Precision of the positive class at the version's threshold: the promotion rule."""
        return self.at_threshold.get("precision")


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


# --- Rebuilding the drift reference and the operating curve of a version -----------------------

SplitPart = Literal["train", "val", "test"]


def split_rows(
    registry: Registry, version: str, frame: pd.DataFrame, part: SplitPart
) -> pd.DataFrame:
    """The tweets of one part of a version's split, read back from `data/split.csv.gz` of its
    run and taken from `frame` (the Sentiment140 file it was trained on, loaded whole).

    ValueError when the split does not match `frame` (another file, or one changed since).
    """
    info = registry.version(version)
    if info.run_id is None:
        raise ValueError(f"version {version} of {registry.model_name!r} has no run with a split")
    data = registry.read_artifact(info.run_id, SPLIT_ARTIFACT)
    assignments = pd.read_csv(io.BytesIO(data), compression="gzip")
    rows = assignments[assignments["split"] == part]
    missing = set(rows["source_row"]) - set(frame.index)
    if missing:
        raise ValueError(
            f"{len(missing)} {part} rows of version {version} are not in this file: "
            "pass the file it was trained on"
        )
    tweets = frame.loc[rows["source_row"]]
    if (tweets["label"].to_numpy() != rows["label"].to_numpy()).any():
        raise ValueError(
            f"the labels of version {version}'s {part} rows differ in this file: "
            "pass the file it was trained on"
        )
    return tweets


@dataclass(frozen=True)
class Rebuilt:
    reference: list[dict[str, object]]
    curve: OperatingCurve


def rebuild_reference(registry: Registry, version: str, frame: pd.DataFrame) -> Rebuilt:
    """Build the drift reference (from the validation split) and the operating curve (from the
    test split) of a registered version, scored as serving does, and log both into its run."""
    val = split_rows(registry, version, frame, "val")
    test = split_rows(registry, version, frame, "test")
    model = registry.load(version)
    texts = val["text"].astype(str).tolist()
    scores = model.scores(texts)
    rows = build_reference(
        texts, scores.probabilities, scores.oov_rates, registry.model_name, version
    )
    curve = OperatingCurve.measure(
        test["label"].to_numpy(), model.predict_proba(test["text"].astype(str).tolist())
    )
    registry.log_reference(version, rows)
    registry.log_operating_curve(version, curve)
    return Rebuilt(rows, curve)
