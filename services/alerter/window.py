"""The sliding window over wrong-prediction reports, as pure functions over a small state.

The state is what the alerter keeps in JetStream KV: the reports still inside the window,
when the last alert was raised, and that alert itself (so a redelivered report re-publishes
the same alert, which JetStream then drops as a duplicate, instead of raising a new one).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.messages import AlertRaised, FeedbackReported

TRUNCATE_TWEET_AT = 80


class WindowEntry(BaseModel):
    report_id: str
    reported_at: datetime
    report: dict[str, Any]


class WrongPredictionWindow(BaseModel):
    entries: list[WindowEntry] = Field(default_factory=list)
    last_alert_at: datetime | None = None
    last_alert: AlertRaised | None = None


def truncate(text: str, limit: int = TRUNCATE_TWEET_AT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_summary(report: FeedbackReported) -> dict[str, Any]:
    """One report in the team's format: what was predicted, by which model, and when."""
    p = report.prediction
    return {
        "report_id": report.id,
        "prediction_id": report.prediction_id,
        "tweet": truncate(p.text),
        "tweet_length": len(p.text),
        "predicted_label": p.label,
        "probability": round(p.probability, 4),
        "threshold": round(p.threshold, 4),
        "model_name": p.model_name,
        "model_version": p.model_version,
        "correct_label": report.correct_label,
        "comment": report.comment,
        "reported_at": report.reported_at.isoformat(),
        "language": p.language.code if p.language else None,
        "reliable": p.reliable,
        "reliability_note": p.reliability_note,
    }


def alert_id_for(report_ids: list[str]) -> str:
    """Same burst, same id: two replicas that raise it race to the same Nats-Msg-Id."""
    digest = hashlib.sha256("|".join(sorted(report_ids)).encode()).hexdigest()
    return f"wrong-{digest[:24]}"


def record_report(
    window: WrongPredictionWindow,
    report: FeedbackReported,
    *,
    now: datetime,
    threshold: int,
    window_s: int,
    cooldown_s: int,
) -> tuple[WrongPredictionWindow, AlertRaised | None]:
    """Add a report; return the new window and the alert to publish, if any.

    A report seen before changes nothing (and returns the alert it already triggered, if any);
    nor does a report on a prediction already counted in the window: one prediction counts
    once, however many reports it gets, so one client cannot raise an alert on its own by
    reporting one tweet three times.
    """
    if window.last_alert is not None and report.id in window.last_alert.details.get(
        "report_ids", []
    ):
        return window, window.last_alert
    if any(e.report_id == report.id for e in window.entries):
        return window, None

    horizon = now - timedelta(seconds=window_s)
    entries = [e for e in window.entries if e.reported_at > horizon]
    if any(e.report.get("prediction_id") == report.prediction_id for e in entries):
        return window, None
    if report.reported_at > horizon:
        entries.append(
            WindowEntry(
                report_id=report.id,
                reported_at=report.reported_at,
                report=report_summary(report),
            )
        )
    in_cooldown = window.last_alert_at is not None and now - window.last_alert_at < timedelta(
        seconds=cooldown_s
    )
    if in_cooldown or len(entries) < threshold:
        return window.model_copy(update={"entries": entries}), None

    report_ids = [e.report_id for e in entries]
    alert = AlertRaised(
        id=alert_id_for(report_ids),
        kind="wrong_predictions",
        raised_at=now,
        summary=(
            f"{len(entries)} wrong predictions reported within {window_s // 60} min "
            f"(threshold {threshold})"
        ),
        details={
            "window_s": window_s,
            "threshold": threshold,
            "report_ids": report_ids,
            "reports": [e.report for e in entries],
        },
    )
    return WrongPredictionWindow(entries=[], last_alert_at=now, last_alert=alert), alert
