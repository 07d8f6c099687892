"""feedback.reported -> alerts.raised -> email.

Two durable consumers: the first counts wrong-prediction reports in the sliding window kept
in KV and raises at most one alert per burst; the second emails each alert once. When the
SMTP server (or the KV bucket) is away, the message in hand is held and retried with back-off
for as long as it takes, kept ours by in-progress acks: its deliveries are not spent, and it
is never dead-lettered for an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from faststream.nats import NatsBroker, NatsRouter, PullSub
from faststream.nats.annotations import NatsMessage

from services.alerter.email import MailerUnavailable, send_alert_email
from services.alerter.state import AlerterState, WindowConflict
from services.alerter.window import record_report
from shared import subjects
from shared.bus import (
    RetryLater,
    Streams,
    durable_subscriber,
    keep_trying,
    publish_event,
    worker_router,
)
from shared.messages import AlertRaised, FeedbackReported
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_WINDOW_CONFLICTS = 20


def build_router(
    broker: NatsBroker,
    settings: Settings,
    streams: Streams,
    state: AlerterState,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> NatsRouter:
    router = worker_router(broker, "alerter", settings)

    # One at a time: reports are counted in the order they were reported (a larger pull
    # would handle them concurrently), and their rate is low.
    @durable_subscriber(
        router,
        subjects.FEEDBACK_REPORTED,
        streams.feedback,
        subjects.DURABLE_ALERTER,
        settings,
        PullSub(batch_size=1, timeout=1.0),
    )
    async def on_feedback_reported(report: FeedbackReported, msg: NatsMessage) -> None:
        alert = await keep_trying(
            lambda: count_report(report),
            keep_alive=msg.in_progress,
            settings=settings,
            what="the alert window",
        )
        if alert is not None:
            await publish_event(
                broker,
                alert,
                subjects.ALERTS_RAISED,
                msg_id=alert.id,
                stream=subjects.STREAM_ALERTS,
            )
            log.info("alert raised", extra={"alert_id": alert.id, "kind": alert.kind})

    async def count_report(report: FeedbackReported) -> AlertRaised | None:
        for _ in range(MAX_WINDOW_CONFLICTS):
            try:
                window, revision = await state.load_window()
            except Exception as error:  # the KV bucket cannot be read (bus away)
                raise RetryLater(f"cannot read the alert window: {error}") from error
            updated, alert = record_report(
                window,
                report,
                now=clock(),
                threshold=settings.alert_reports,
                window_s=settings.alert_window_s,
                cooldown_s=settings.alert_cooldown_s,
            )
            if updated is window:  # a redelivered report: nothing to save
                return alert
            try:
                await state.save_window(updated, revision)
            except WindowConflict:
                continue
            except Exception as error:
                raise RetryLater(f"cannot save the alert window: {error}") from error
            return alert
        raise RetryLater("the alert window kept changing under concurrent updates")

    @durable_subscriber(
        router,
        subjects.ALERTS_RAISED,
        streams.alerts,
        subjects.DURABLE_MAILER,
        settings,
        PullSub(batch_size=1, timeout=1.0),
    )
    async def on_alert_raised(alert: AlertRaised, msg: NatsMessage) -> None:
        async def email_once() -> None:
            try:
                if await state.was_sent(alert.id):
                    return
            except Exception as error:
                raise RetryLater(f"cannot read which alerts were sent: {error}") from error
            try:
                await send_alert_email(alert, settings)
            except MailerUnavailable as exc:
                raise RetryLater(str(exc)) from exc
            log.info("alert emailed", extra={"alert_id": alert.id, "to": settings.alert_to})
            try:
                await state.mark_sent(alert.id)
            except Exception:  # sent; a redelivery may send it twice, rather than never
                log.warning("could not record the email as sent", extra={"alert_id": alert.id})

        # SMTP down: the alert is held and retried as long as it takes, never dropped.
        await keep_trying(email_once, keep_alive=msg.in_progress, settings=settings, what="SMTP")

    return router
