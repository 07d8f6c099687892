"""How good a model is for the business rule: threshold, metrics and plots, as pure functions.

A tweet is called positive when its probability is >= the threshold (scikit-learn's convention,
and the one serving applies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from shared.calibration import brier, ece

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold with the precision and recall of the positive class it gives.

    `reached` is False when no threshold gives the target precision; the threshold is then the
    one with the best precision.
    """

    threshold: float
    precision: float
    recall: float
    reached: bool
    target_precision: float


def choose_threshold(
    y_true: ArrayLike, proba: ArrayLike, target_precision: float
) -> ThresholdChoice:
    """The threshold with the highest recall among those reaching target_precision (validation)."""
    labels, scores = _as_arrays(y_true, proba)
    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    if not labels.any():
        raise ValueError("cannot choose a threshold: no positive tweet in the data")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    # The curve's last point (precision 1, recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    reaching = np.flatnonzero(precision >= target_precision)
    if reaching.size:
        # Highest recall; among equal recalls, the best precision.
        best = reaching[np.lexsort((precision[reaching], recall[reaching]))[-1]]
        reached = True
    else:
        best = np.lexsort((recall, precision))[-1]
        reached = False
        logger.warning(
            "target precision %.3f not reached; best precision %.3f at threshold %.4f",
            target_precision,
            precision[best],
            thresholds[best],
        )
    return ThresholdChoice(
        threshold=float(thresholds[best]),
        precision=float(precision[best]),
        recall=float(recall[best]),
        reached=reached,
        target_precision=target_precision,
    )


def classification_metrics(
    y_true: ArrayLike, proba: ArrayLike, threshold: float
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class at threshold; ROC AUC and PR AUC.

    The AUCs are NaN when the data hold one class only (they are undefined there).
    """
    labels, scores = _as_arrays(y_true, proba)
    predicted = (scores >= threshold).astype(int)
    both_classes = np.unique(labels).size == 2
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if both_classes else float("nan"),
    }


def calibration_metrics(
    y_true: ArrayLike, raw: ArrayLike, calibrated: ArrayLike
) -> dict[str, float]:
    """Expected calibration error and Brier score, before and after calibration."""
    labels, before = _as_arrays(y_true, raw)
    _, after = _as_arrays(y_true, calibrated)
    return {
        "ece": ece(labels, after),
        "brier": brier(labels, after),
        "ece_raw": ece(labels, before),
        "brier_raw": brier(labels, before),
    }


def save_plots(y_true: ArrayLike, proba: ArrayLike, threshold: float, out_dir: Path) -> list[Path]:
    """Confusion matrix at threshold, ROC curve and precision-recall curve, as PNG files."""
    labels, scores = _as_arrays(y_true, proba)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predicted = (scores >= threshold).astype(int)
    # Figure objects without pyplot render with Agg and leave no global backend state behind.
    paths = []

    figure = Figure(figsize=(5, 4.5))
    ConfusionMatrixDisplay(
        confusion_matrix(labels, predicted, labels=[0, 1]), display_labels=["negative", "positive"]
    ).plot(ax=figure.subplots(), colorbar=False, values_format="d")
    figure.axes[0].set_title(f"Confusion matrix at threshold {threshold:.3f}")
    paths.append(_save(figure, out_dir / "confusion_matrix.png"))

    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    RocCurveDisplay.from_predictions(labels, scores, ax=axes, name="model")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set_title("ROC curve")
    axes.legend(loc="lower right")
    paths.append(_save(figure, out_dir / "roc_curve.png"))

    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    PrecisionRecallDisplay.from_predictions(labels, scores, ax=axes, name="model")
    at_threshold = classification_metrics(labels, scores, threshold)
    axes.scatter(
        [at_threshold["recall"]],
        [at_threshold["precision"]],
        color="red",
        zorder=3,
        label=f"threshold {threshold:.3f}",
    )
    axes.set_title("Precision-recall curve (positive class)")
    axes.legend(loc="lower left")
    paths.append(_save(figure, out_dir / "precision_recall_curve.png"))
    return paths


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _as_arrays(y_true: ArrayLike, proba: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(proba, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} probabilities")
    if labels.size == 0:
        raise ValueError("no data to evaluate")
    return labels, scores
