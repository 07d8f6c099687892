"""feedback.reported -> alerts.raised -> email.

Two durable consumers, one message at a time: the first counts wrong-prediction reports in
the sliding window kept in KV (in the order they were reported) and raises at most one alert
per burst; the second emails each alert once. A report's texts (the tweet, the comment) are
minimised before they enter the window, hence the alert, its email and its row
(shared/scrub.py): an upstream app may publish a report as written. When the SMTP server or
the KV bucket is away, the message in hand is held and retried with back-off for as long as
it takes, kept ours by in-progress acks (shared/jetstream.py): its deliveries are not spent,
and it is never dead-lettered for an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.alerter.email import MailerUnavailable, send_alert_email
from services.alerter.state import AlerterState, WindowConflict
from services.alerter.window import record_report
from shared import subjects
from shared.bus import RetryLater
from shared.jetstream import Outcome, Outgoing, decode_batch
from shared.messages import AlertRaised, FeedbackReported
from shared.scrub import TextPolicy
from shared.settings import Settings

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)

WORKER = "alerter"
MAX_WINDOW_CONFLICTS = 20
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReportCounter:
    """Counts each report in the window; publishes the alert a burst completes."""

    def __init__(self, state: AlerterState, settings: Settings, clock: Clock = utc_now) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.policy = TextPolicy.of(settings)

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        reports, rejected = decode_batch(
            batch, FeedbackReported, self.settings.max_message_kb * 1024
        )
        outcome = Outcome(rejected=rejected)
        for index, report in reports:
            alert = await self.count(minimised(report, self.policy))
            if alert is not None:
                log.info("alert raised", extra={"alert_id": alert.id, "kind": alert.kind})
                outcome.outputs.append(
                    Outgoing(
                        subjects.ALERTS_RAISED, alert.model_dump_json().encode(), alert.id, index
                    )
                )
        return outcome

    async def count(self, report: FeedbackReported) -> AlertRaised | None:
        """Record the report (compare-and-set on the window); the alert it raises, if any.
        A redelivered report returns the alert it raised the first time: JetStream drops
        the re-publish as a duplicate."""
        settings = self.settings
        for _ in range(MAX_WINDOW_CONFLICTS):
            try:
                window, revision = await self.state.load_window()
            except Exception as error:  # the KV bucket cannot be read (bus away)
                raise RetryLater(f"cannot read the alert window: {error}") from error
            updated, alert = record_report(
                window,
                report,
                now=self.clock(),
                threshold=settings.alert_reports,
                window_s=settings.alert_window_s,
                cooldown_s=settings.alert_cooldown_s,
            )
            if updated is window:  # a redelivered report: nothing to save
                return alert
            try:
                await self.state.save_window(updated, revision)
            except WindowConflict:
                continue
            except Exception as error:
                raise RetryLater(f"cannot save the alert window: {error}") from error
            return alert
        raise RetryLater("the alert window kept changing under concurrent updates")


def minimised(report: FeedbackReported, policy: TextPolicy) -> FeedbackReported:
    """The report with its texts as the policy keeps them, ready to be quoted in an alert."""
    snapshot = report.prediction.model_copy(update={"text": policy.stored(report.prediction.text)})
    comment = None if report.comment is None else policy.stored(report.comment)
    return report.model_copy(update={"prediction": snapshot, "comment": comment})


class Mailer:
    """Emails each alert once (replicas and redeliveries share the `sent` marks in KV)."""

    def __init__(self, state: AlerterState, settings: Settings) -> None:
        self.state = state
        self.settings = settings

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        alerts, rejected = decode_batch(batch, AlertRaised, self.settings.max_message_kb * 1024)
        for _, alert in alerts:
            await self.email_once(alert)
        return Outcome(rejected=rejected)

    async def email_once(self, alert: AlertRaised) -> None:
        try:
            if await self.state.was_sent(alert.id):
                return
        except Exception as error:
            raise RetryLater(f"cannot read which alerts were sent: {error}") from error
        try:
            await send_alert_email(alert, self.settings)
        except MailerUnavailable as error:  # held and retried until the server is back
            raise RetryLater(str(error)) from error
        log.info("alert emailed", extra={"alert_id": alert.id, "to": self.settings.alert_to})
        try:
            await self.state.mark_sent(alert.id)
        except Exception:  # sent; a redelivery may send it twice, rather than never
            log.warning("could not record the email as sent", extra={"alert_id": alert.id})
