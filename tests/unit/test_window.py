"""The sliding window over wrong-prediction reports, as pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.alerter.window import WrongPredictionWindow, alert_id_for, record_report, truncate
from shared.messages import FeedbackReported, PredictionSnapshot

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RULE = {"threshold": 3, "window_s": 300, "cooldown_s": 600}


def report(n: int, at: datetime) -> FeedbackReported:
    return FeedbackReported(
        id=f"r{n}",
        prediction_id=f"p{n}",
        reported_at=at,
        prediction=PredictionSnapshot(
            text="Great delay",
            label="positive",
            probability=0.8,
            threshold=0.7,
            model_name="m",
            model_version="3",
            scored_at=at,
        ),
    )


def feed(window: WrongPredictionWindow, *items: tuple[int, datetime]) -> list[object]:
    alerts = []
    for n, at in items:
        window, alert = record_report(window, report(n, at), now=at, **RULE)
        alerts.append(alert)
    feed.window = window  # type: ignore[attr-defined]
    return alerts


def test_third_report_within_five_minutes_raises_the_alert() -> None:
    alerts = feed(
        WrongPredictionWindow(),
        (1, T0),
        (2, T0 + timedelta(minutes=2)),
        (3, T0 + timedelta(minutes=4)),
    )
    assert alerts[:2] == [None, None]
    assert alerts[2] is not None


def test_reports_older_than_the_window_do_not_count() -> None:
    alerts = feed(
        WrongPredictionWindow(),
        (1, T0),
        (2, T0 + timedelta(minutes=3)),
        (3, T0 + timedelta(minutes=5, seconds=1)),
    )
    assert alerts == [None, None, None]


def test_no_second_alert_during_cooldown_then_one_after() -> None:
    first = feed(WrongPredictionWindow(), *((n, T0) for n in range(3)))
    window = feed.window  # type: ignore[attr-defined]
    during = [
        record_report(
            window, report(10 + n, T0 + timedelta(minutes=2)), now=T0 + timedelta(minutes=2), **RULE
        )[1]
        for n in range(3)
    ]
    assert first[2] is not None and during == [None, None, None]
    later = T0 + timedelta(minutes=11)
    after = feed(window, *((20 + n, later) for n in range(3)))
    assert after[2] is not None


def test_a_report_seen_twice_is_counted_once() -> None:
    window, _ = record_report(WrongPredictionWindow(), report(1, T0), now=T0, **RULE)
    again, alert = record_report(window, report(1, T0), now=T0, **RULE)
    assert again is window and alert is None


def test_a_redelivered_report_returns_the_alert_it_raised() -> None:
    feed(WrongPredictionWindow(), *((n, T0) for n in range(3)))
    window = feed.window  # type: ignore[attr-defined]
    same, alert = record_report(window, report(2, T0), now=T0, **RULE)
    assert same is window
    assert alert is not None and alert.id == window.last_alert.id


def test_the_alert_id_depends_only_on_the_reports() -> None:
    assert alert_id_for(["b", "a"]) == alert_id_for(["a", "b"])
    assert alert_id_for(["a"]) != alert_id_for(["b"])


def test_truncate_keeps_short_text_and_marks_the_cut() -> None:
    assert truncate("short") == "short"
    cut = truncate("x" * 200)
    assert len(cut) == 80 and cut.endswith("…")
