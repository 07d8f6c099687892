"""Precision on live traffic: the share of positive tweets estimated from unlabelled
predictions (prior shift), the precision the threshold in use then gives, and the threshold
that would keep the target precision.

The promise "a tweet called positive is positive with precision P" is measured on Sentiment140,
where half the tweets are positive. The airline's mentions are mostly complaints: with fewer
positives, the same false-positive rate eats a larger part of the "positive" answers. Under
label shift (the words of a positive tweet do not change, only how many there are), the
version's operating curve (true- and false-positive rates at each threshold, measured on its
labelled test split) and the live prior π give the live precision:

    precision(t) = π·TPR(t) / (π·TPR(t) + (1 - π)·FPR(t))

π is estimated from the calibrated probabilities of recent predictions:

- `em_prior`: EM re-estimation (Saerens, Latinne and Decaestecker, 2002): re-weight each
  posterior by π/π_train, average, repeat. Needs calibrated probabilities (shared/calibration.py
  gives them) and uses every tweet's probability;
- `bbse_prior`: black-box shift estimation (Lipton, Wang and Smola, 2018) in its binary form:
  the live share q of tweets at or above a threshold is π·TPR + (1 - π)·FPR, solved for π. It
  needs no calibration but uses one bit per tweet.

scripts/bench_shift.py measures both on streams of known prevalence; the platform uses EM (see
the README's "Precision on live traffic" for the figures behind that choice). Intervals come from
a bootstrap over the live tweets and the test split's counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from shared.storage import Store

OPERATING_CURVE_ARTIFACT = "operating_curve.json"
PriorMethod = Literal["em", "bbse"]
_EPS = 1e-6
_GRID = np.linspace(0.0, 1.0, 201)


class OperatingCurveError(ValueError):
    """An operating curve that cannot be built or read."""


@dataclass(frozen=True)
class OperatingCurve:
    """True- and false-positive rates at each threshold, measured on labelled tweets (a
    version's test split), with how many of each label they were measured on."""

    thresholds: np.ndarray  # ascending
    tpr: np.ndarray  # share of positive tweets with probability >= threshold
    fpr: np.ndarray  # share of negative tweets with probability >= threshold
    positives: int
    negatives: int

    @classmethod
    def measure(cls, labels: ArrayLike, proba: ArrayLike) -> OperatingCurve:
        y = np.asarray(labels, dtype=int)
        p = np.asarray(proba, dtype=float)
        positives, negatives = int(y.sum()), int((1 - y).sum())
        if positives == 0 or negatives == 0:
            raise OperatingCurveError("an operating curve needs tweets of both labels")
        # A fixed grid plus the quantiles, so that steep regions are sampled finely.
        thresholds = np.unique(np.concatenate([_GRID, np.quantile(p, _GRID)]))
        positive_scores = np.sort(p[y == 1])
        negative_scores = np.sort(p[y == 0])
        tpr = 1.0 - np.searchsorted(positive_scores, thresholds, side="left") / positives
        fpr = 1.0 - np.searchsorted(negative_scores, thresholds, side="left") / negatives
        return cls(thresholds, tpr, fpr, positives, negatives)

    @property
    def prior(self) -> float:
        """Share of positives in the tweets the curve was measured on (the training prior)."""
        return self.positives / (self.positives + self.negatives)

    def rates(self, threshold: float) -> tuple[float, float]:
        """(TPR, FPR) at a threshold, interpolated between the measured points."""
        return (
            float(np.interp(threshold, self.thresholds, self.tpr)),
            float(np.interp(threshold, self.thresholds, self.fpr)),
        )

    def precision(self, threshold: float, prior: float) -> float:
        tpr, fpr = self.rates(threshold)
        return precision_of(tpr, fpr, prior)

    def recall(self, threshold: float) -> float:
        return self.rates(threshold)[0]

    def rows(self) -> list[dict[str, Any]]:
        """One row per point: the JSON artifact's content and the ClickHouse table's rows."""
        return [
            {
                "threshold": float(t),
                "tpr": float(tp),
                "fpr": float(fp),
                "positives": self.positives,
                "negatives": self.negatives,
            }
            for t, tp, fp in zip(self.thresholds, self.tpr, self.fpr, strict=True)
        ]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> OperatingCurve:
        if not rows:
            raise OperatingCurveError("an operating curve needs at least one point")
        ordered = sorted(rows, key=lambda row: float(row["threshold"]))
        try:
            return cls(
                np.array([float(row["threshold"]) for row in ordered]),
                np.array([float(row["tpr"]) for row in ordered]),
                np.array([float(row["fpr"]) for row in ordered]),
                int(ordered[0]["positives"]),
                int(ordered[0]["negatives"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise OperatingCurveError(f"unreadable operating curve: {error}") from error

    def to_json(self) -> str:
        return json.dumps(self.rows())

    @classmethod
    def from_json(cls, text: str | bytes) -> OperatingCurve:
        try:
            rows = json.loads(text)
        except ValueError as error:
            raise OperatingCurveError(f"unreadable operating curve: {error}") from error
        if not isinstance(rows, list):
            raise OperatingCurveError("an operating curve is a JSON list of points")
        return cls.from_rows(rows)


def precision_of(
    tpr: float | np.ndarray, fpr: float | np.ndarray, prior: float | np.ndarray
) -> Any:
    """Precision of the positive label given the rates and the share of positives (NaN when
    nothing is called positive)."""
    called = np.asarray(prior * tpr + (1 - prior) * fpr, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(called > 0, prior * tpr / np.where(called > 0, called, 1), np.nan)
    return float(result) if result.ndim == 0 else result


def em_prior(
    proba: ArrayLike, train_prior: float, *, tol: float = 1e-6, max_iter: int = 500
) -> np.ndarray:
    """EM estimate of the share of positives behind calibrated probabilities (Saerens et al.).

    proba is (n,) or (b, n) for b resamples at once; returns a scalar array or (b,).
    """
    p = np.clip(np.asarray(proba, dtype=float), _EPS, 1 - _EPS)
    prior = np.full(p.shape[:-1], train_prior, dtype=float)
    for _ in range(max_iter):
        up = (prior / train_prior)[..., None] * p
        down = ((1 - prior) / (1 - train_prior))[..., None] * (1 - p)
        updated = np.mean(up / (up + down), axis=-1)
        done = np.all(np.abs(updated - prior) < tol)
        prior = np.clip(updated, _EPS, 1 - _EPS)
        if done:
            break
    return prior


def bbse_threshold(curve: OperatingCurve) -> float:
    """The threshold BBSE counts at: where TPR - FPR is largest (the best-conditioned)."""
    return float(curve.thresholds[int(np.argmax(curve.tpr - curve.fpr))])


def bbse_prior(proba: ArrayLike, curve: OperatingCurve, threshold: float) -> np.ndarray:
    """BBSE estimate: the live share called positive at `threshold`, corrected by the curve's
    rates there. proba is (n,) or (b, n); returns a scalar array or (b,)."""
    p = np.asarray(proba, dtype=float)
    tpr, fpr = curve.rates(threshold)
    called = np.mean(p >= threshold, axis=-1)
    gap = tpr - fpr
    if gap <= 0:
        raise OperatingCurveError("the curve does not separate the labels at this threshold")
    return np.clip((called - fpr) / gap, 0.0, 1.0)


def estimate_prior(
    proba: ArrayLike, curve: OperatingCurve, method: PriorMethod = "em"
) -> np.ndarray:
    if method == "em":
        return em_prior(proba, curve.prior)
    return bbse_prior(proba, curve, bbse_threshold(curve))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ShiftEstimate:
    """The live prior and the precision and recall a threshold gives under it."""

    tweets: int
    prior: Interval
    threshold: float
    precision: Interval
    recall: float


def estimate(
    proba: ArrayLike,
    curve: OperatingCurve,
    threshold: float,
    *,
    method: PriorMethod = "em",
    resamples: int = 200,
    confidence: float = 0.9,
    seed: int = 0,
) -> ShiftEstimate:
    """The live prior behind these (calibrated) probabilities and the precision `threshold`
    gives, each with a bootstrap interval over the live tweets and the curve's counts."""
    p = np.asarray(proba, dtype=float)
    if p.size == 0:
        raise ValueError("no prediction to estimate from")
    rng = np.random.default_rng(seed)
    prior = float(estimate_prior(p, curve, method))
    resampled = p[rng.integers(0, p.size, size=(resamples, p.size))]
    priors = np.asarray(estimate_prior(resampled, curve, method), dtype=float)
    tpr, fpr = curve.rates(threshold)
    tprs = rng.binomial(curve.positives, tpr, size=resamples) / curve.positives
    fprs = rng.binomial(curve.negatives, fpr, size=resamples) / curve.negatives
    precisions = precision_of(tprs, fprs, priors)
    tail = (1 - confidence) / 2 * 100
    return ShiftEstimate(
        tweets=int(p.size),
        prior=Interval(prior, *_percentiles(priors, tail)),
        threshold=threshold,
        precision=Interval(float(precision_of(tpr, fpr, prior)), *_percentiles(precisions, tail)),
        recall=tpr,
    )


@dataclass(frozen=True)
class ThresholdDecision:
    threshold: float
    reached: bool  # False: no threshold within bounds gives the target; the best one is kept
    changed: bool
    reason: str


def threshold_for(
    curve: OperatingCurve, prior: float, target: float, *, low: float, high: float
) -> tuple[float, bool]:
    """The lowest threshold within [low, high] whose precision under `prior` reaches target
    (the one with the most recall), else the one with the best precision; (threshold, reached)."""
    candidates = curve.thresholds[(curve.thresholds >= low) & (curve.thresholds <= high)]
    candidates = np.unique(np.concatenate([[low, high], candidates]))
    precisions = np.array([curve.precision(float(t), prior) for t in candidates])
    reaching = np.flatnonzero(np.nan_to_num(precisions, nan=-1.0) >= target)
    if reaching.size:
        return float(candidates[reaching[0]]), True
    return float(candidates[int(np.nanargmax(precisions))]), False


def adapt_threshold(
    curve: OperatingCurve,
    estimate_now: ShiftEstimate,
    target: float,
    *,
    low: float,
    high: float,
    hysteresis: float,
) -> ThresholdDecision:
    """Keep the threshold in use while its estimated precision is within `hysteresis` of the
    target (and it is within bounds); otherwise move to threshold_for."""
    in_use = estimate_now.threshold
    precision = estimate_now.precision.value
    inside = low <= in_use <= high
    if inside and abs(precision - target) <= hysteresis:
        return ThresholdDecision(in_use, True, False, "estimated precision is on target")
    chosen, reached = threshold_for(curve, estimate_now.prior.value, target, low=low, high=high)
    if abs(chosen - in_use) < 1e-9:
        return ThresholdDecision(in_use, reached, False, "no better threshold within bounds")
    direction = "raised" if chosen > in_use else "lowered"
    why = (
        f"estimated precision {precision:.3f} at {in_use:.4f} under a prior of "
        f"{estimate_now.prior.value:.3f}; target {target:.3f}"
        + ("" if reached else " (not reachable within bounds: best precision kept)")
    )
    return ThresholdDecision(chosen, reached, True, f"{direction}: {why}")


def _percentiles(values: np.ndarray, tail: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


# --- In ClickHouse: the curve of each served version, the recent probabilities ---

CURVE_TABLE = "operating_curve"

_CURVE = """
SELECT threshold, tpr, fpr, positives, negatives
FROM operating_curve FINAL
WHERE model_name = {model_name:String} AND model_version = {model_version:String}
ORDER BY threshold
"""

# The version that scored last, the threshold it used, and its recent probabilities.
_RECENT = """
SELECT probability, threshold, model_version
FROM predictions
WHERE model_name = {model_name:String}
  AND scored_at >= fromUnixTimestamp64Milli({since_ms:Int64})
  AND scored_at < fromUnixTimestamp64Milli({until_ms:Int64})
  AND model_version = (
      SELECT argMax(model_version, scored_at) FROM predictions
      WHERE model_name = {model_name:String}
        AND scored_at >= fromUnixTimestamp64Milli({since_ms:Int64})
        AND scored_at < fromUnixTimestamp64Milli({until_ms:Int64})
  )
ORDER BY scored_at DESC
LIMIT {limit:UInt32}
"""


def save_curve(store: Store, model_name: str, model_version: str, curve: OperatingCurve) -> None:
    """Store a version's curve; saving it again replaces it."""
    created_at = datetime.now(UTC)
    store.insert(
        CURVE_TABLE,
        [
            {
                "model_name": model_name,
                "model_version": model_version,
                "created_at": created_at,
                **row,
            }
            for row in curve.rows()
        ],
    )


def load_curve(store: Store, model_name: str, model_version: str) -> OperatingCurve | None:
    """A version's stored curve, or None when it has none."""
    rows = store.query(_CURVE, {"model_name": model_name, "model_version": model_version})
    return OperatingCurve.from_rows(rows) if rows else None


@dataclass(frozen=True)
class RecentScores:
    """The latest version's probabilities over a window, newest first, and its threshold in use
    (the one its latest prediction was made at)."""

    model_version: str
    threshold_in_use: float
    probabilities: np.ndarray


def recent_scores(
    store: Store, model_name: str, since: datetime, until: datetime, limit: int
) -> RecentScores | None:
    window = {
        "since_ms": int(since.timestamp() * 1000),
        "until_ms": int(until.timestamp() * 1000),
    }
    rows = store.query(_RECENT, {"model_name": model_name, "limit": limit, **window})
    if not rows:
        return None
    return RecentScores(
        model_version=str(rows[0]["model_version"]),
        threshold_in_use=float(rows[0]["threshold"]),
        probabilities=np.array([float(row["probability"]) for row in rows]),
    )
