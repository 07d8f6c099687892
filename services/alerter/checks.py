"""Scheduled checks: drift, error rate and live precision, read from ClickHouse, raised on
alerts.raised.

Every `check_interval_s` the alerter computes, over recent predictions:
- drift: the PSI of each feature (predicted probability, text features, out-of-vocabulary rate)
  of each model version that scored tweets against that version's training reference; any
  feature at or above `drift_psi_alert` raises a `drift` alert;
- error rate: the share of predictions users reported wrong; at or above `error_rate_alert`
  over at least `error_rate_min_predictions` predictions, an `error_rate` alert;
- precision: the share of positive tweets behind the latest version's recent probabilities
  and the precision its threshold gives under it (shared/shift.py), published on
  models.threshold with the threshold infer applies next (moved to keep the target in
  `adaptive` mode); a `precision_risk` alert when the estimated precision at that threshold
  is under the target by more than `precision_risk_margin`.
Each kind has its own cooldown (`check_cooldown_s`), claimed in the alerter's KV bucket so that
replicas raise one alert between them. Alerts go out on alerts.raised like the wrong-prediction
ones: the mailer emails them and the store worker keeps them.

The decisions are pure functions of the figures; `Checks` only reads, claims and publishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.nats import NatsBroker

from services.alerter.state import AlerterState
from shared import subjects
from shared.bus import publish_event
from shared.drift import psi_by_feature
from shared.language import language_name
from shared.messages import AlertRaised, ThresholdSet
from shared.panels import (
    ErrorRate,
    LanguageShare,
    error_rate,
    language_totals,
    model_versions,
    unreliable_share,
)
from shared.settings import Settings
from shared.shift import (
    OperatingCurve,
    RecentScores,
    ThresholdDecision,
    adapt_threshold,
    estimate,
    load_curve,
    recent_scores,
)
from shared.storage import StorageError, Store

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours > 1 else ''}"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def drift_alert(
    psi: dict[str, dict[str, float]],
    *,
    model_name: str,
    threshold: float,
    window_s: float,
    now: datetime,
) -> AlertRaised | None:
    """A drift alert when any feature of any version reaches the PSI threshold, else None.

    psi maps model version -> feature -> PSI over the window (features with too few predictions
    are absent, so they never alert).
    """
    drifted = {
        version: {feature: value for feature, value in figures.items() if value >= threshold}
        for version, figures in psi.items()
    }
    drifted = {version: features for version, features in drifted.items() if features}
    if not drifted:
        return None
    version, feature, value = max(
        ((v, f, x) for v, features in drifted.items() for f, x in features.items()),
        key=lambda item: item[2],
    )
    others = sum(len(features) for features in drifted.values()) - 1
    summary = (
        f"Drift: PSI of {feature} is {value:.2f} for {model_name} v{version} over the last "
        f"{_duration(window_s)} (alert at {threshold:g})"
        + (f", {others} more feature{'s' if others > 1 else ''} drifted" if others else "")
    )
    return AlertRaised(
        kind="drift",
        raised_at=now,
        summary=summary,
        details={
            "model_name": model_name,
            "model_version": version,
            "feature": feature,
            "psi": round(value, 4),
            "threshold": threshold,
            "window_s": window_s,
            "drifted": {v: sorted(features) for v, features in drifted.items()},
            "psi_by_version": {
                v: {f: round(x, 4) for f, x in sorted(figures.items())}
                for v, figures in psi.items()
            },
        },
    )


def error_rate_alert(
    rate: ErrorRate,
    *,
    threshold: float,
    min_predictions: int,
    window_s: float,
    now: datetime,
) -> AlertRaised | None:
    """An error-rate alert when enough predictions were made and the reported share reaches
    the threshold, else None."""
    share = rate["error_rate"]
    if rate["predictions"] < min_predictions or share is None or share < threshold:
        return None
    return AlertRaised(
        kind="error_rate",
        raised_at=now,
        summary=(
            f"Error rate: {share:.1%} of the last {_duration(window_s)}'s predictions reported "
            f"wrong ({rate['reported']} of {rate['predictions']}; alert at {threshold:.1%})"
        ),
        details={
            "error_rate": round(share, 4),
            "reported": rate["reported"],
            "predictions": rate["predictions"],
            "threshold": threshold,
            "window_s": window_s,
        },
    )


def language_shift_alert(
    share: LanguageShare,
    languages: list[dict[str, Any]],
    *,
    threshold: float,
    min_predictions: int,
    window_s: float,
    now: datetime,
) -> AlertRaised | None:
    """A language_shift alert when enough predictions were made and the share of tweets in a
    language their model did not learn reaches the threshold: the audience moved where the
    model cannot read (their verdicts are guesses). `languages` is the window's mix."""
    value = share["unreliable_share"]
    if share["predictions"] < min_predictions or value is None or value < threshold:
        return None
    mix = [
        f"{language_name(str(row['language']))} {float(row['share']):.0%}" for row in languages[:4]
    ]
    return AlertRaised(
        kind="language_shift",
        raised_at=now,
        summary=(
            f"Language shift: {value:.0%} of the last {_duration(window_s)}'s tweets were in a "
            f"language the model did not learn ({share['unreliable']} of "
            f"{share['predictions']}; alert at {threshold:.0%}); mix: {', '.join(mix)}"
        ),
        details={
            "unreliable_share": round(value, 4),
            "unreliable": share["unreliable"],
            "predictions": share["predictions"],
            "threshold": threshold,
            "window_s": window_s,
            "languages": {str(row["language"]): int(row["tweets"]) for row in languages},
        },
    )


def _rounded(value: float) -> float | None:
    return None if value != value else round(value, 6)  # NaN: nothing called positive


def precision_round(
    scores: RecentScores,
    curve: OperatingCurve,
    settings: Settings,
    *,
    now: datetime,
) -> tuple[ThresholdSet, AlertRaised | None]:
    """The live precision of the latest version and the threshold to apply next; with a
    precision_risk alert when even that threshold misses the target by more than the margin."""
    target = settings.target_precision
    found = estimate(scores.probabilities, curve, scores.threshold_in_use, method="em")
    if settings.threshold_mode == "adaptive":
        decision = adapt_threshold(
            curve,
            found,
            target,
            low=settings.threshold_min,
            high=settings.threshold_max,
            hysteresis=settings.threshold_hysteresis,
        )
        threshold: float | None = decision.threshold
    else:
        decision = ThresholdDecision(
            scores.threshold_in_use,
            reached=curve.precision(scores.threshold_in_use, found.prior.value) >= target,
            changed=False,
            reason="fixed mode: the version's own threshold",
        )
        threshold = None
    event = ThresholdSet(
        model_name=settings.model_name,
        model_version=scores.model_version,
        estimated_at=now,
        mode=settings.threshold_mode,
        method="em",
        tweets=found.tweets,
        prior=round(found.prior.value, 6),
        prior_low=round(found.prior.low, 6),
        prior_high=round(found.prior.high, 6),
        precision=_rounded(found.precision.value),
        precision_low=_rounded(found.precision.low),
        precision_high=_rounded(found.precision.high),
        recall=round(found.recall, 6),
        target_precision=target,
        threshold_in_use=scores.threshold_in_use,
        threshold=threshold,
        changed=decision.changed,
        reached=decision.reached,
        reason=decision.reason,
    )
    expected = curve.precision(decision.threshold, found.prior.value)
    if not expected < target - settings.precision_risk_margin:  # NaN: nothing called positive
        return event, None
    advice = (
        f"no threshold up to {settings.threshold_max:g} reaches it"
        if settings.threshold_mode == "adaptive"
        else "AIRPARADIS_THRESHOLD_MODE=adaptive would let the threshold follow"
    )
    alert = AlertRaised(
        kind="precision_risk",
        raised_at=now,
        summary=(
            f"Precision risk: tweets called positive by {settings.model_name} "
            f"v{scores.model_version} are estimated to be positive {expected:.0%} of the time "
            f"at threshold {decision.threshold:.3f} (target {target:.0%}): about "
            f"{found.prior.value:.0%} of the last {found.tweets:,} tweets are positive; {advice}"
        ),
        details={
            "model_name": settings.model_name,
            "model_version": scores.model_version,
            "estimated_precision": round(expected, 4),
            "precision_in_use": _rounded(found.precision.value),
            "precision_interval": [_rounded(found.precision.low), _rounded(found.precision.high)],
            "estimated_prior": round(found.prior.value, 4),
            "prior_interval": [round(found.prior.low, 4), round(found.prior.high, 4)],
            "threshold": decision.threshold,
            "mode": settings.threshold_mode,
            "target_precision": target,
            "margin": settings.precision_risk_margin,
            "tweets": found.tweets,
        },
    )
    return event, alert


@dataclass
class Checks:
    """Reads the figures, decides, claims the cooldown and publishes; one round per call."""

    broker: NatsBroker
    settings: Settings
    store: Store
    state: AlerterState
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rounds: int = 0  # rounds run by run_forever
    failures: int = 0  # checks of those rounds that failed (ClickHouse or NATS down)

    async def run_once(self) -> list[AlertRaised]:
        """One round of the checks; the alerts raised (after their cooldown). A check that
        fails is logged and counted, and does not keep the others from running."""
        now = self.clock()
        raised: list[AlertRaised] = []
        checks = (
            ("drift", self._drift),
            ("error_rate", self._error_rate),
            ("precision_risk", self._precision),
            ("language_shift", self._language),
        )
        for kind, decide in checks:
            try:
                alert = await self._raise(await decide(now), now)
            except StorageError as error:  # the store is down or not started yet
                self.failures += 1
                log.warning(
                    "check failed; trying again next round",
                    extra={"kind": kind, "reason": str(error)},
                )
                continue
            except Exception:
                self.failures += 1
                log.exception("check failed; trying again next round", extra={"kind": kind})
                continue
            if alert is not None:
                raised.append(alert)
        return raised

    async def _raise(self, alert: AlertRaised | None, now: datetime) -> AlertRaised | None:
        if alert is None:
            return None
        if not await self.state.claim_cooldown(alert.kind, now, self.settings.check_cooldown_s):
            log.debug("alert in cooldown", extra={"kind": alert.kind})
            return None
        try:
            await publish_event(
                self.broker,
                alert,
                subjects.ALERTS_RAISED,
                msg_id=alert.id,
                stream=subjects.STREAM_ALERTS,
            )
        except BaseException:
            # Not published: give the cooldown back, or the alert would be lost for its length.
            await self.state.release_cooldown(alert.kind, now)
            raise
        log.info("alert raised", extra={"alert_id": alert.id, "kind": alert.kind})
        return alert

    async def run_forever(self) -> None:
        """Rounds every check_interval_s until cancelled."""
        while True:
            await self.run_once()
            self.rounds += 1
            await asyncio.sleep(self.settings.check_interval_s)

    async def _drift(self, now: datetime) -> AlertRaised | None:
        settings = self.settings
        since = now - timedelta(seconds=settings.drift_window_s)

        def figures() -> dict[str, dict[str, float]]:
            versions = model_versions(self.store, since, now, settings.model_name)
            return {
                version: psi_by_feature(self.store, since, now, settings.model_name, version)
                for version in versions
            }

        return drift_alert(
            await asyncio.to_thread(figures),
            model_name=settings.model_name,
            threshold=settings.drift_psi_alert,
            window_s=settings.drift_window_s,
            now=now,
        )

    async def _error_rate(self, now: datetime) -> AlertRaised | None:
        settings = self.settings
        since = now - timedelta(seconds=settings.error_rate_window_s)
        rate = await asyncio.to_thread(error_rate, self.store, since, now)
        return error_rate_alert(
            rate,
            threshold=settings.error_rate_alert,
            min_predictions=settings.error_rate_min_predictions,
            window_s=settings.error_rate_window_s,
            now=now,
        )

    async def _language(self, now: datetime) -> AlertRaised | None:
        settings = self.settings
        since = now - timedelta(seconds=settings.drift_window_s)

        def figures() -> tuple[LanguageShare, list[dict[str, Any]]]:
            return (
                unreliable_share(self.store, since, now),
                language_totals(self.store, since, now),
            )

        share, languages = await asyncio.to_thread(figures)
        return language_shift_alert(
            share,
            languages,
            threshold=settings.language_alert_share,
            min_predictions=settings.language_min_predictions,
            window_s=settings.drift_window_s,
            now=now,
        )

    async def _precision(self, now: datetime) -> AlertRaised | None:
        settings = self.settings
        since = now - timedelta(seconds=settings.precision_window_s)

        def figures() -> tuple[RecentScores, OperatingCurve | None] | None:
            scores = recent_scores(
                self.store, settings.model_name, since, now, settings.precision_max_predictions
            )
            if scores is None or scores.probabilities.size < settings.precision_min_predictions:
                return None
            return scores, load_curve(self.store, settings.model_name, scores.model_version)

        found = await asyncio.to_thread(figures)
        if found is None:
            return None
        scores, curve = found
        if curve is None:
            log.warning(
                "no operating curve for this version: no live precision estimate until "
                "`airparadis models reference` builds one",
                extra={"model_version": scores.model_version},
            )
            return None
        event, alert = precision_round(scores, curve, settings, now=now)
        await publish_event(
            self.broker,
            event,
            subjects.MODELS_THRESHOLD,
            msg_id=f"threshold-{event.id}",
            stream=subjects.STREAM_MODELS,
        )
        log.info(
            "live precision estimated",
            extra={
                "model_version": event.model_version,
                "prior": event.prior,
                "precision": event.precision,
                "threshold_in_use": event.threshold_in_use,
                "threshold": event.threshold,
                "changed": event.changed,
            },
        )
        return alert
