"""The alerter's two handlers with an in-memory window and a real SMTP server: bursts of
reports raise one alert, then a cooldown; each alert is emailed once; an SMTP outage holds the
alert (RetryLater) instead of losing it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.msg import Msg

from services.alerter.handler import Mailer, ReportCounter
from shared import subjects
from shared.bus import RetryLater
from shared.jetstream import Outcome
from shared.messages import AlertRaised, FeedbackReported, PredictionSnapshot
from shared.nats_server import free_port
from shared.settings import Settings
from tests.fakes import MemoryAlerterState
from tests.servers import Inbox, smtp_server


def report(n: int, at: datetime, prediction: str | None = None) -> FeedbackReported:
    return FeedbackReported(
        id=f"r{n}",
        prediction_id=prediction or f"p{n}",
        correct_label="negative",
        reported_at=at,
        prediction=PredictionSnapshot(
            text=f"Tweet number {n} " + "x" * 200,
            label="positive",
            probability=0.91,
            threshold=0.8,
            model_name="airparadis-sentiment",
            model_version="1",
            scored_at=at,
        ),
    )


def raw(event: FeedbackReported | AlertRaised, subject: str) -> Msg:
    data = event.model_dump_json().encode()
    return Msg(_client=None, subject=subject, data=data, headers={})  # type: ignore[arg-type]


class Alerter:
    """The counter with a clock the test moves."""

    def __init__(self, settings: Settings) -> None:
        self.now = datetime.now(UTC)
        self.state = MemoryAlerterState()
        self.counter = ReportCounter(self.state, settings, clock=lambda: self.now)

    async def send(self, *reports: FeedbackReported) -> list[AlertRaised]:
        raised = []
        for r in reports:
            outcome: Outcome = await self.counter([raw(r, subjects.FEEDBACK_REPORTED)])
            assert outcome.rejected == {}
            raised += [AlertRaised.model_validate_json(o.payload) for o in outcome.outputs]
        return raised


@pytest.fixture
def alerter(settings: Settings) -> Alerter:
    return Alerter(settings)


async def test_three_reports_in_window_raise_one_alert(alerter: Alerter) -> None:
    [alert] = await alerter.send(*(report(i, alerter.now) for i in range(3)))
    assert alert.kind == "wrong_predictions"
    assert alert.details["report_ids"] == ["r0", "r1", "r2"]
    first = alert.details["reports"][0]
    assert first["tweet"].endswith("…") and len(first["tweet"]) == 80
    assert first["tweet_length"] == len("Tweet number 0 ") + 200
    assert first["model_version"] == "1"
    assert first["threshold"] == 0.8


async def test_two_reports_raise_nothing(alerter: Alerter) -> None:
    assert await alerter.send(report(1, alerter.now), report(2, alerter.now)) == []


async def test_reports_spread_beyond_the_window_raise_nothing(alerter: Alerter) -> None:
    start = alerter.now
    raised = []
    for i in range(3):
        alerter.now = start + timedelta(minutes=3 * i)
        raised += await alerter.send(report(i, alerter.now))
    assert raised == []


async def test_burst_during_cooldown_raises_no_second_alert(alerter: Alerter) -> None:
    first = await alerter.send(*(report(i, alerter.now) for i in range(3)))
    alerter.now += timedelta(minutes=1)
    second = await alerter.send(*(report(i, alerter.now) for i in range(3, 6)))
    assert len(first) == 1 and second == []


async def test_redelivered_report_is_not_counted_twice(alerter: Alerter) -> None:
    again = report(1, alerter.now)
    assert await alerter.send(again, again, again) == []
    window, _ = await alerter.state.load_window()
    assert [e.report_id for e in window.entries] == ["r1"]


async def test_reports_on_one_prediction_count_once(alerter: Alerter) -> None:
    same = [report(i, alerter.now, prediction="p-same") for i in range(5)]
    assert await alerter.send(*same) == []
    window, _ = await alerter.state.load_window()
    assert [e.report_id for e in window.entries] == ["r0"]


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as (controller, inbox):
        yield controller.port, inbox


def alert() -> AlertRaised:
    return AlertRaised(id="wrong-1", kind="wrong_predictions", summary="3 wrong predictions")


async def test_an_alert_is_emailed_once_with_its_json(
    settings: Settings, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    mailer = Mailer(
        MemoryAlerterState(),
        settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}),
    )
    message = raw(alert(), subjects.ALERTS_RAISED)
    await mailer([message])
    await mailer([message])  # a redelivery
    [email] = inbox.messages
    assert email["X-Airparadis-Alert-Id"] == "wrong-1"
    attached = next(p for p in email.walk() if p.get_filename() == "alert.json")
    assert json.loads(attached.get_payload(decode=True))["summary"] == "3 wrong predictions"


async def test_an_alert_is_held_while_smtp_is_down(settings: Settings) -> None:
    mailer = Mailer(
        MemoryAlerterState(),
        settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": free_port()}),
    )
    with pytest.raises(RetryLater, match=r"(?i)smtp|connect"):
        await mailer([raw(alert(), subjects.ALERTS_RAISED)])
