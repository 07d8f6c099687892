"""Calibration: fitted maps make probabilities honest, survive their saved form, and the choice
between Platt and isotonic is made on held-out evidence."""

from __future__ import annotations

import numpy as np
import pytest

from shared.calibration import Calibration, brier, ece, fit, fit_calibration


def overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and raw probabilities that are too sure of themselves (true logit halved)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    score = rng.normal(np.where(labels == 1, 1.0, -1.0), 1.0)
    return labels, 1 / (1 + np.exp(-4 * score))  # calibrated would be exp(-2 * score)


def test_identity_is_the_default_and_reads_a_model_saved_before_calibration() -> None:
    proba = np.array([0.1, 0.5, 0.9])
    assert np.array_equal(Calibration().apply(proba), proba)
    assert Calibration.from_params(None) == Calibration()


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_each_method_lowers_the_calibration_error_on_fresh_tweets(method: str) -> None:
    labels, raw = overconfident(4000)
    fresh_labels, fresh_raw = overconfident(4000, seed=1)
    calibration = fit(method, labels, raw)  # type: ignore[arg-type]
    calibrated = calibration.apply(fresh_raw)
    assert ece(fresh_labels, calibrated) < ece(fresh_labels, fresh_raw) / 2
    assert brier(fresh_labels, calibrated) < brier(fresh_labels, fresh_raw)
    assert np.all(np.diff(calibration.apply(np.linspace(0, 1, 101))) >= 0)  # monotone


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_the_saved_form_gives_the_same_probabilities(method: str) -> None:
    labels, raw = overconfident(1000)
    calibration = fit(method, labels, raw)  # type: ignore[arg-type]
    again = Calibration.from_params(calibration.as_params())
    assert np.allclose(again.apply(raw), calibration.apply(raw))


def test_platt_never_reverses_the_order_of_two_tweets() -> None:
    labels, raw = overconfident(1000)
    calibrated = fit("platt", labels, raw).apply(raw)
    assert np.all(np.diff(calibrated[np.argsort(raw)]) >= 0)
    inside = np.unique(raw[(raw > 1e-3) & (raw < 1 - 1e-3)])
    assert np.all(np.diff(fit("platt", labels, raw).apply(inside)) > 0)  # strictly, off the ends


def test_the_choice_is_the_lower_cross_validated_brier_score() -> None:
    labels, raw = overconfident(3000)
    choice = fit_calibration(labels, raw)
    assert set(choice.cv_brier) == {"platt", "isotonic"}
    assert choice.calibration.method == min(choice.cv_brier, key=choice.cv_brier.__getitem__)


def test_an_unknown_method_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown calibration method 'beta'"):
        Calibration.from_params({"method": "beta"})


@pytest.mark.parametrize("positives", [0, 19])
def test_too_few_tweets_of_a_label_leave_the_probabilities_as_they_are(positives: int) -> None:
    labels = np.r_[np.ones(positives, dtype=int), np.zeros(100, dtype=int)]
    choice = fit_calibration(labels, np.linspace(0, 1, labels.size))
    assert choice.calibration == Calibration()
    assert choice.note is not None and f"{positives} validation tweets" in choice.note


def test_ece_of_a_perfectly_calibrated_stream_is_near_zero() -> None:
    rng = np.random.default_rng(3)
    proba = rng.uniform(0, 1, 50_000)
    labels = rng.uniform(0, 1, proba.size) < proba
    assert ece(labels, proba) < 0.01
    assert ece(labels, np.clip(proba + 0.2, 0, 1)) > 0.1
