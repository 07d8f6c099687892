"""Threshold choice for the positive-precision rule, metrics and plots on constructed data."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from training.evaluate import choose_threshold, classification_metrics, save_plots

# Sorted by probability: at 0.7 three true positives and no false one; at 0.5 four and one;
# at 0.3 five and two.
PROBA = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
LABELS = [1, 1, 1, 0, 1, 0, 1, 0, 0]


@pytest.mark.parametrize(
    ("target", "threshold", "precision", "recall"),
    [
        (1.0, 0.7, 1.0, 0.6),
        (0.8, 0.5, 0.8, 0.8),
        (0.75, 0.5, 0.8, 0.8),
        (0.7, 0.3, 5 / 7, 1.0),
    ],
)
def test_threshold_reaches_target_precision_with_highest_recall(
    target: float, threshold: float, precision: float, recall: float
) -> None:
    choice = choose_threshold(LABELS, PROBA, target)

    assert choice.reached
    assert choice.threshold == pytest.approx(threshold)
    assert choice.precision == pytest.approx(precision)
    assert choice.recall == pytest.approx(recall)
    assert choice.precision >= target


def test_unreachable_target_is_flagged_and_gives_the_best_precision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Best precision is 0.5, at 0.8 (recall 0.5) and at 0.6 (recall 1): the latter wins.
    with caplog.at_level(logging.WARNING):
        choice = choose_threshold([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], 0.9)

    assert not choice.reached
    assert choice.threshold == pytest.approx(0.6)
    assert choice.precision == pytest.approx(0.5)
    assert choice.recall == pytest.approx(1.0)
    assert "not reached" in caplog.text


def test_threshold_needs_a_positive_tweet() -> None:
    with pytest.raises(ValueError, match="no positive"):
        choose_threshold([0, 0], [0.2, 0.7], 0.9)


def test_metrics_on_a_tiny_known_example() -> None:
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)

    assert metrics == pytest.approx(
        {
            "accuracy": 0.5,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "roc_auc": 0.75,
            "pr_auc": 0.5 * 1 + 0.5 * 2 / 3,
        }
    )


def test_a_probability_equal_to_the_threshold_is_positive() -> None:
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.4)

    assert metrics["recall"] == 1.0
    assert metrics["precision"] == pytest.approx(2 / 3)


def test_aucs_are_nan_when_only_one_class_is_present() -> None:
    metrics = classification_metrics([1, 1], [0.3, 0.8], threshold=0.5)

    assert metrics["accuracy"] == 0.5
    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["pr_auc"])


def test_save_plots_writes_the_three_figures(tmp_path: Path) -> None:
    paths = save_plots(LABELS, PROBA, 0.5, tmp_path / "plots")

    assert sorted(path.name for path in paths) == [
        "confusion_matrix.png",
        "precision_recall_curve.png",
        "roc_curve.png",
    ]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in paths)
