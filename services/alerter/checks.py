"""Scheduled checks: drift and error rate, read from ClickHouse, raised on alerts.raised.

Every `check_interval_s` the alerter computes, over recent predictions:
- drift: the PSI of each feature (predicted probability, text features, out-of-vocabulary rate)
  of each model version that scored tweets against that version's training reference; any
  feature at or above `drift_psi_alert` raises a `drift` alert;
- error rate: the share of predictions users reported wrong; at or above `error_rate_alert`
  over at least `error_rate_min_predictions` predictions, an `error_rate` alert.
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

from faststream.nats import NatsBroker

from services.alerter.state import AlerterState
from shared import subjects
from shared.bus import publish_event
from shared.drift import psi_by_feature
from shared.messages import AlertRaised
from shared.panels import ErrorRate, error_rate, model_versions
from shared.settings import Settings
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
        """One round of both checks; the alerts raised (after their cooldown). A check that
        fails is logged and counted, and does not keep the other from running."""
        now = self.clock()
        raised: list[AlertRaised] = []
        for kind, decide in (("drift", self._drift), ("error_rate", self._error_rate)):
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
