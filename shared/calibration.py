"""Calibrated probabilities: what the model says is what happens, so that a probability can be
read as a share of positive tweets, and the prior-shift estimates of shared/shift.py hold.

Every family's raw probability goes through a `Calibration` fitted on the validation split
(training/experiment.py) and saved in the model's config; the pyfunc applies it before anything
else sees the probability (the threshold, the drift features, the monitor). Two methods:

- Platt: a logistic regression on the logit of the raw probability (two numbers; monotone,
  keeps the ranking, smooth);
- isotonic: a non-decreasing piecewise-linear map (more flexible, can flatten regions).

`fit_calibration` picks the one with the lower Brier score in 5-fold cross-validation on the
validation split and reports both, so the choice is logged with its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

Method = Literal["none", "platt", "isotonic"]
METHODS: tuple[Method, ...] = ("platt", "isotonic")
_EPS = 1e-6
ECE_BINS = 15
# Below this many validation tweets of either label, a calibration map would be noise.
MIN_TWEETS_PER_LABEL = 20


@dataclass(frozen=True)
class Calibration:
    """A map from a raw probability of positive to a calibrated one."""

    method: Method = "none"
    # Platt: sigmoid(a * logit(p) + b).
    a: float = 1.0
    b: float = 0.0
    # Isotonic: linear interpolation through (x, y), x ascending, y non-decreasing.
    x: tuple[float, ...] = field(default=())
    y: tuple[float, ...] = field(default=())

    def apply(self, proba: ArrayLike) -> np.ndarray:
        raw = np.asarray(proba, dtype=float)
        if self.method == "none":
            return raw
        if self.method == "platt":
            return _sigmoid(self.a * _logit(raw) + self.b)
        return np.interp(raw, self.x, self.y)

    def as_params(self) -> dict[str, Any]:
        """JSON-ready form, saved in the model's config."""
        return {
            "method": self.method,
            "a": self.a,
            "b": self.b,
            "x": list(self.x),
            "y": list(self.y),
        }

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> Calibration:
        """The saved form back; None (a model saved before calibration existed) is identity."""
        if not params:
            return cls()
        method = params.get("method", "none")
        if method not in ("none", *METHODS):
            raise ValueError(f"unknown calibration method {method!r}; known: none, {METHODS}")
        return cls(
            method=method,
            a=float(params.get("a", 1.0)),
            b=float(params.get("b", 0.0)),
            x=tuple(float(v) for v in params.get("x", ())),
            y=tuple(float(v) for v in params.get("y", ())),
        )


@dataclass(frozen=True)
class CalibrationChoice:
    """The calibration kept and the cross-validated Brier score of each method tried (none
    tried, and why, when the validation split is too small to calibrate on)."""

    calibration: Calibration
    cv_brier: dict[str, float]
    note: str | None = None


def fit(method: Method, labels: ArrayLike, proba: ArrayLike) -> Calibration:
    """Fit one method on labelled raw probabilities."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(proba, dtype=float)
    if method == "none":
        return Calibration()
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
        return Calibration("platt", a=float(model.coef_[0, 0]), b=float(model.intercept_[0]))
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return Calibration(
            "isotonic",
            x=tuple(float(v) for v in model.X_thresholds_),
            y=tuple(float(v) for v in model.y_thresholds_),
        )
    raise ValueError(f"unknown calibration method {method!r}")


def fit_calibration(
    labels: ArrayLike, proba: ArrayLike, *, folds: int = 5, seed: int = 42
) -> CalibrationChoice:
    """Platt or isotonic, whichever has the lower Brier score in cross-validation on these
    labelled raw probabilities (the validation split), refitted on all of them.

    With fewer than MIN_TWEETS_PER_LABEL tweets of a label there is nothing to learn a map from:
    the probabilities are left as they are, and the choice says why."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(proba, dtype=float)
    fewest = min(int((y == 1).sum()), int((y == 0).sum()))
    if fewest < max(MIN_TWEETS_PER_LABEL, folds):
        return CalibrationChoice(
            Calibration(),
            {},
            note=f"not calibrated: {fewest} validation tweets of the rarer label, "
            f"{MIN_TWEETS_PER_LABEL} needed",
        )
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    for method in METHODS:
        calibrated = np.empty_like(p)
        for fit_rows, held_rows in splitter.split(p.reshape(-1, 1), y):
            calibrated[held_rows] = fit(method, y[fit_rows], p[fit_rows]).apply(p[held_rows])
        scores[method] = brier(y, calibrated)
    best: Method = min(METHODS, key=lambda method: scores[method])
    return CalibrationChoice(fit(best, y, p), scores)


def brier(labels: ArrayLike, proba: ArrayLike) -> float:
    """Mean squared gap between the probability and the 0/1 label (lower is better)."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(proba, dtype=float)
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def ece(labels: ArrayLike, proba: ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the tweet-weighted gap between mean probability and share of
    positives in equal-width probability bins (0: calibrated)."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(proba, dtype=float)
    if not y.size:
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    gap = 0.0
    for b in np.unique(which):
        members = which == b
        gap += members.sum() * abs(p[members].mean() - y[members].mean())
    return float(gap / y.size)


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return np.log(clipped / (1 - clipped))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
