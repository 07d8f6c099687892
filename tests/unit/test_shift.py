"""Prior shift: the share of positives is found from unlabelled calibrated probabilities, the
precision a threshold gives under it matches what labelled tweets show, and the adaptive
threshold keeps the target where the model can reach it."""

from __future__ import annotations

import numpy as np
import pytest

from shared.shift import (
    OperatingCurve,
    OperatingCurveError,
    adapt_threshold,
    bbse_prior,
    bbse_threshold,
    em_prior,
    estimate,
    threshold_for,
)


def tweets(n: int, prior: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels at a given prior and probabilities calibrated for a balanced training set: the
    score of a positive is N(1, 1), of a negative N(-1, 1), so P(positive | s) = sigmoid(2 s)
    when half are positive."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=n) < prior).astype(int)
    score = rng.normal(np.where(labels == 1, 1.0, -1.0), 1.0)
    return labels, 1 / (1 + np.exp(-2 * score))


@pytest.fixture(scope="module")
def curve() -> OperatingCurve:
    labels, proba = tweets(20_000, 0.5, seed=0)
    return OperatingCurve.measure(labels, proba)


def true_precision(labels: np.ndarray, proba: np.ndarray, threshold: float) -> float:
    called = proba >= threshold
    return float(labels[called].mean())


@pytest.mark.parametrize("prior", [0.05, 0.1, 0.2, 0.35, 0.5, 0.8])
def test_em_finds_the_share_of_positives_within_003(curve: OperatingCurve, prior: float) -> None:
    labels, proba = tweets(3000, prior, seed=11)
    assert abs(float(em_prior(proba, curve.prior)) - labels.mean()) < 0.03


@pytest.mark.parametrize("prior", [0.2, 0.5])
def test_bbse_finds_it_too_with_one_bit_per_tweet(curve: OperatingCurve, prior: float) -> None:
    labels, proba = tweets(3000, prior, seed=12)
    estimated = float(bbse_prior(proba, curve, bbse_threshold(curve)))
    assert abs(estimated - labels.mean()) < 0.04


def test_resamples_are_estimated_at_once(curve: OperatingCurve) -> None:
    _, proba = tweets(500, 0.3, seed=2)
    batch = np.stack([proba, proba[::-1]])
    assert np.allclose(em_prior(batch, curve.prior), em_prior(proba, curve.prior), atol=1e-5)


def test_the_estimated_precision_matches_the_labels_and_falls_with_the_prior(
    curve: OperatingCurve,
) -> None:
    found = {}
    for prior in (0.2, 0.5):
        labels, proba = tweets(5000, prior, seed=21)
        found[prior] = estimate(proba, curve, 0.8)
        assert abs(found[prior].precision.value - true_precision(labels, proba, 0.8)) < 0.03
        assert found[prior].prior.low <= labels.mean() <= found[prior].prior.high
        assert found[prior].precision.low <= found[prior].precision.value
        assert found[prior].precision.value <= found[prior].precision.high
    assert found[0.2].precision.value < found[0.5].precision.value - 0.1


@pytest.mark.parametrize("prior", [0.1, 0.2, 0.5, 0.8])
def test_the_adaptive_threshold_keeps_the_target_precision(
    curve: OperatingCurve, prior: float
) -> None:
    labels, proba = tweets(6000, prior, seed=31)
    estimated = float(em_prior(proba, curve.prior))
    threshold, reached = threshold_for(curve, estimated, 0.9, low=0.05, high=0.999)
    assert reached
    assert abs(true_precision(labels, proba, threshold) - 0.9) < 0.03


def test_an_unreachable_target_keeps_the_best_precision_and_says_so(
    curve: OperatingCurve,
) -> None:
    threshold, reached = threshold_for(curve, 0.01, 0.99, low=0.05, high=0.9)
    assert not reached and threshold == pytest.approx(0.9, abs=0.01)


def test_the_threshold_moves_only_out_of_the_hysteresis_band(curve: OperatingCurve) -> None:
    _, balanced = tweets(4000, 0.5, seed=41)
    on_target, _ = threshold_for(curve, 0.5, 0.9, low=0.05, high=0.999)
    kept = adapt_threshold(
        curve, estimate(balanced, curve, on_target), 0.9, low=0.05, high=0.999, hysteresis=0.02
    )
    assert not kept.changed and kept.threshold == on_target

    _, complaints = tweets(4000, 0.2, seed=42)
    moved = adapt_threshold(
        curve, estimate(complaints, curve, on_target), 0.9, low=0.05, high=0.999, hysteresis=0.02
    )
    assert moved.changed and moved.threshold > on_target and moved.reason.startswith("raised")


def test_a_curve_survives_its_saved_form(curve: OperatingCurve) -> None:
    again = OperatingCurve.from_json(curve.to_json())
    assert again.positives == curve.positives and again.negatives == curve.negatives
    assert again.rates(0.73) == pytest.approx(curve.rates(0.73))


@pytest.mark.parametrize("text", ["not json", '{"a": 1}', "[]", '[{"threshold": 0.5}]'])
def test_a_broken_curve_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(OperatingCurveError):
        OperatingCurve.from_json(text)


def test_a_curve_needs_both_labels() -> None:
    with pytest.raises(OperatingCurveError, match="both labels"):
        OperatingCurve.measure(np.ones(10, dtype=int), np.linspace(0, 1, 10))


def test_no_prediction_no_estimate(curve: OperatingCurve) -> None:
    with pytest.raises(ValueError, match="no prediction"):
        estimate(np.array([]), curve, 0.5)
