"""The drift, error-rate and precision checks' decisions and their cooldown, as pure logic."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.alerter.checks import Checks, drift_alert, error_rate_alert, precision_round
from shared.drift import build_reference, from_json, to_json
from shared.estimators.base import oov_shares
from shared.messages import AlertRaised
from shared.settings import Settings
from shared.shift import OperatingCurve, RecentScores, threshold_for
from tests.drift import reference_shares
from tests.fakes import MemoryAlerterState

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DRIFT = {"model_name": "m", "threshold": 0.25, "window_s": 3600, "now": NOW}
ERRORS = {"threshold": 0.05, "min_predictions": 100, "window_s": 3600, "now": NOW}


def test_no_drift_alert_under_the_threshold() -> None:
    assert drift_alert({"3": {"probability": 0.24, "length": 0.1}}, **DRIFT) is None
    assert drift_alert({}, **DRIFT) is None


def test_drift_alert_names_the_worst_feature_and_counts_the_others() -> None:
    psi = {"3": {"probability": 0.4, "length": 0.3, "n_urls": 0.01}, "2": {"oov_rate": 0.26}}

    alert = drift_alert(psi, **DRIFT)

    assert alert is not None and alert.kind == "drift"
    assert alert.summary.startswith("Drift: PSI of probability is 0.40 for m v3")
    assert "last 1 hour" in alert.summary and "2 more features drifted" in alert.summary
    assert alert.details["drifted"] == {"3": ["length", "probability"], "2": ["oov_rate"]}
    assert alert.details["psi_by_version"]["3"]["n_urls"] == 0.01
    assert alert.raised_at == NOW


def test_drift_alert_at_exactly_the_threshold() -> None:
    assert drift_alert({"1": {"probability": 0.25}}, **DRIFT) is not None


@pytest.mark.parametrize(
    ("predictions", "reported"),
    [(99, 50), (1000, 49), (0, 0)],
    ids=["too few predictions", "under the rate", "no traffic"],
)
def test_no_error_rate_alert(predictions: int, reported: int) -> None:
    rate = reported / predictions if predictions else None
    figures = {"predictions": predictions, "reported": reported, "error_rate": rate}
    assert error_rate_alert(figures, **ERRORS) is None  # type: ignore[arg-type]


def test_error_rate_alert_says_how_many_of_how_many() -> None:
    alert = error_rate_alert({"predictions": 200, "reported": 10, "error_rate": 0.05}, **ERRORS)
    assert alert is not None and alert.kind == "error_rate"
    assert "5.0% of the last 1 hour's predictions reported wrong (10 of 200" in alert.summary
    assert alert.details["error_rate"] == 0.05


async def test_cooldown_is_per_kind_and_ends() -> None:
    state = MemoryAlerterState()
    assert await state.claim_cooldown("drift", NOW, 3600)
    assert not await state.claim_cooldown("drift", NOW + timedelta(minutes=59), 3600)
    assert await state.claim_cooldown("error_rate", NOW + timedelta(minutes=1), 3600)
    assert await state.claim_cooldown("drift", NOW + timedelta(hours=1), 3600)


def test_oov_shares_counts_unknown_tokens_and_leaves_empty_texts_unmeasured() -> None:
    rates = oov_shares(["great crew", "great zzz", "zzz yyy", ""], {"great", "crew"}.__contains__)
    assert rates[:3].tolist() == [0.0, 0.5, 1.0]
    assert math.isnan(rates[3])


def test_reference_round_trips_through_its_json_artifact() -> None:
    texts = ["Loved the crew https://x.co", "Lost my bag @AirParadis #fail", "ok"] * 10
    probabilities = np.linspace(0.01, 0.99, len(texts))
    oov = [0.0, 0.5, float("nan")] * 10

    rows = build_reference(texts, probabilities, oov, "m", "4", created_at=NOW)
    back = from_json(to_json(rows))

    assert back == rows
    shares = reference_shares(rows)
    assert {"probability", "length", "n_urls", "oov_rate"} <= shares.keys()
    assert all(sum(values) == pytest.approx(1.0) for values in shares.values())
    oov_row = next(row for row in rows if row["feature"] == "oov_rate")
    assert oov_row["observations"] == 20  # the NaN of tweets without words is left out


def test_reference_without_oov_rates_has_no_oov_feature() -> None:
    rows = build_reference(["a b", "c"], [0.2, 0.8], None, "m", "4")
    assert "oov_rate" not in reference_shares(rows)


def test_reference_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 tweets but 1 probabilities"):
        build_reference(["a", "b"], [0.5], None, "m", "4")


class _FailingBroker:
    async def publish(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("NATS is reconnecting")


async def test_an_alert_that_cannot_be_published_gives_its_cooldown_back(
    settings: Settings,
) -> None:
    state = MemoryAlerterState()
    checks = Checks(_FailingBroker(), settings, store=None, state=state, clock=lambda: NOW)  # type: ignore[arg-type]
    drift = drift_alert({"3": {"probability": 0.9}}, **DRIFT)

    async def drifted(now: datetime) -> AlertRaised | None:
        return drift

    async def broken(now: datetime) -> AlertRaised | None:
        raise TimeoutError("ClickHouse did not answer")

    async def quiet(now: datetime) -> AlertRaised | None:
        return None

    checks._drift = drifted  # type: ignore[method-assign]
    checks._error_rate = broken  # type: ignore[method-assign]
    checks._precision = quiet  # type: ignore[method-assign]
    checks._language = quiet  # type: ignore[method-assign]

    assert await checks.run_once() == []
    assert checks.failures == 2  # the publish, and the error-rate check: neither stops the other
    assert state.last_raised == {}  # the next round may raise the drift alert again


async def test_memory_cooldown_release_undoes_only_its_own_claim() -> None:
    state = MemoryAlerterState()
    assert await state.claim_cooldown("drift", NOW, 3600)
    await state.release_cooldown("drift", NOW - timedelta(hours=2))  # not this claim
    assert not await state.claim_cooldown("drift", NOW, 3600)
    await state.release_cooldown("drift", NOW)
    assert await state.claim_cooldown("drift", NOW, 3600)


# --- Precision on live traffic: the round's decision ---


def _balanced_curve_and(prior: float, n: int = 2000) -> tuple[OperatingCurve, RecentScores]:
    """A curve measured on balanced labelled tweets, and recent scores at another prior."""
    rng = np.random.default_rng(5)

    def tweets(size: int, share: float) -> tuple[np.ndarray, np.ndarray]:
        labels = (rng.uniform(size=size) < share).astype(int)
        score = rng.normal(np.where(labels == 1, 1.0, -1.0), 1.0)
        return labels, 1 / (1 + np.exp(-2 * score))

    curve = OperatingCurve.measure(*tweets(20_000, 0.5))
    _, live = tweets(n, prior)
    return curve, RecentScores("3", 0.8, live)


def test_adaptive_round_raises_the_threshold_when_positives_become_rare(
    settings: Settings,
) -> None:
    curve, scores = _balanced_curve_and(0.2)
    event, alert = precision_round(scores, curve, settings, now=NOW)
    assert event.mode == "adaptive" and event.changed
    assert event.threshold is not None and event.threshold > 0.8
    assert abs(event.prior - 0.2) < 0.04 and event.precision is not None
    assert event.precision < settings.target_precision - settings.threshold_hysteresis
    assert alert is None  # the new threshold reaches the target: nothing to tell the team


def test_fixed_round_keeps_the_threshold_and_raises_a_precision_risk(settings: Settings) -> None:
    curve, scores = _balanced_curve_and(0.2)
    fixed = settings.model_copy(update={"threshold_mode": "fixed"})
    event, alert = precision_round(scores, curve, fixed, now=NOW)
    assert event.threshold is None and not event.changed  # infer keeps the version's own
    assert alert is not None and alert.kind == "precision_risk"
    assert alert.details["estimated_precision"] < 0.85
    assert "THRESHOLD_MODE=adaptive" in alert.summary


def test_an_unreachable_target_is_an_alert_in_adaptive_mode_too(settings: Settings) -> None:
    curve, scores = _balanced_curve_and(0.02)
    strict = settings.model_copy(update={"target_precision": 0.99, "threshold_max": 0.9})
    event, alert = precision_round(scores, curve, strict, now=NOW)
    assert not event.reached and event.threshold == pytest.approx(0.9, abs=0.01)
    assert alert is not None and "no threshold up to 0.9 reaches it" in alert.summary


def test_on_target_traffic_changes_nothing(settings: Settings) -> None:
    curve, scores = _balanced_curve_and(0.5, n=4000)
    on_target, _ = threshold_for(curve, 0.5, 0.9, low=0.05, high=0.995)
    event, alert = precision_round(
        RecentScores("3", on_target, scores.probabilities), curve, settings, now=NOW
    )
    assert not event.changed and event.threshold == on_target and alert is None
