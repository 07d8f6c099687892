"""The alerter on the in-memory broker: bursts of reports raise one alert, then a cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared import subjects
from shared.messages import FeedbackReported, PredictionSnapshot
from tests.component.conftest import ControlPlane


def report(n: int, at: datetime) -> FeedbackReported:
    return FeedbackReported(
        id=f"r{n}",
        prediction_id=f"p{n}",
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


async def send(plane: ControlPlane, *reports: FeedbackReported) -> None:
    for r in reports:
        await plane.publish(r.model_dump(mode="json"), subjects.FEEDBACK_REPORTED)


async def test_three_reports_in_window_raise_one_alert(plane: ControlPlane) -> None:
    now = plane.clock[0]
    await send(plane, *(report(i, now) for i in range(3)))

    [alert] = plane.raised
    assert alert.kind == "wrong_predictions"
    assert alert.details["report_ids"] == ["r0", "r1", "r2"]
    first = alert.details["reports"][0]
    assert first["tweet"].endswith("…") and len(first["tweet"]) == 80
    assert first["tweet_length"] == len("Tweet number 0 ") + 200
    assert first["model_version"] == "1"
    assert first["threshold"] == 0.8
    [email] = plane.inbox.messages
    assert email["X-Airparadis-Alert-Id"] == alert.id


async def test_two_reports_raise_nothing(plane: ControlPlane) -> None:
    now = plane.clock[0]
    await send(plane, report(1, now), report(2, now))
    assert plane.raised == []


async def test_reports_spread_beyond_the_window_raise_nothing(plane: ControlPlane) -> None:
    start = plane.clock[0]
    for i in range(3):
        plane.clock[0] = start + timedelta(minutes=3 * i)
        await send(plane, report(i, plane.clock[0]))
    assert plane.raised == []


async def test_burst_during_cooldown_raises_no_second_alert(plane: ControlPlane) -> None:
    now = plane.clock[0]
    await send(plane, *(report(i, now) for i in range(3)))
    plane.clock[0] = now + timedelta(minutes=1)
    await send(plane, *(report(i, plane.clock[0]) for i in range(3, 6)))
    assert len(plane.raised) == 1
    assert len(plane.inbox.messages) == 1


async def test_redelivered_report_is_not_counted_twice(plane: ControlPlane) -> None:
    now = datetime.now(UTC)
    plane.clock[0] = now
    again = report(1, now)
    await send(plane, again, again, again)
    assert plane.raised == []
    window, _ = await plane.alerter_state.load_window()
    assert [e.report_id for e in window.entries] == ["r1"]


async def test_reports_on_one_prediction_count_once(plane: ControlPlane) -> None:
    now = plane.clock[0]
    same = [report(i, now).model_copy(update={"prediction_id": "p-same"}) for i in range(5)]
    await send(plane, *same)
    assert plane.raised == []
    window, _ = await plane.alerter_state.load_window()
    assert [e.report_id for e in window.entries] == ["r0"]
