"""The alerter on the in-memory broker: bursts of reports raise one alert, then a cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared import subjects
from shared.messages import FeedbackReported, PredictionSnapshot
from tests.component.conftest import Pipeline


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


async def send(pipeline: Pipeline, *reports: FeedbackReported) -> None:
    for r in reports:
        await pipeline.publish(r.model_dump(mode="json"), subjects.FEEDBACK_REPORTED)


async def test_three_reports_in_window_raise_one_alert(pipeline: Pipeline) -> None:
    now = pipeline.clock[0]
    await send(pipeline, *(report(i, now) for i in range(3)))

    [alert] = pipeline.repository.alerts.values()
    assert alert.kind == "wrong_predictions"
    assert alert.details["report_ids"] == ["r0", "r1", "r2"]
    first = alert.details["reports"][0]
    assert first["tweet"].endswith("…") and len(first["tweet"]) == 80
    assert first["tweet_length"] == len("Tweet number 0 ") + 200
    assert first["model_version"] == "1"
    assert first["threshold"] == 0.8
    assert pipeline.repository.feedback.keys() == {"r0", "r1", "r2"}
    [email] = pipeline.inbox.messages
    assert email["X-Airparadis-Alert-Id"] == alert.id


async def test_two_reports_raise_nothing(pipeline: Pipeline) -> None:
    now = pipeline.clock[0]
    await send(pipeline, report(1, now), report(2, now))
    assert pipeline.repository.alerts == {}


async def test_reports_spread_beyond_the_window_raise_nothing(pipeline: Pipeline) -> None:
    start = pipeline.clock[0]
    for i in range(3):
        pipeline.clock[0] = start + timedelta(minutes=3 * i)
        await send(pipeline, report(i, pipeline.clock[0]))
    assert pipeline.repository.alerts == {}


async def test_burst_during_cooldown_raises_no_second_alert(pipeline: Pipeline) -> None:
    now = pipeline.clock[0]
    await send(pipeline, *(report(i, now) for i in range(3)))
    pipeline.clock[0] = now + timedelta(minutes=1)
    await send(pipeline, *(report(i, pipeline.clock[0]) for i in range(3, 6)))
    assert len(pipeline.repository.alerts) == 1
    assert len(pipeline.inbox.messages) == 1


async def test_redelivered_report_is_not_counted_twice(pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    pipeline.clock[0] = now
    again = report(1, now)
    await send(pipeline, again, again, again)
    assert pipeline.repository.alerts == {}
    window, _ = await pipeline.alerter_state.load_window()
    assert [e.report_id for e in window.entries] == ["r1"]
