"""The alert email is the last guard: whatever the alert quotes, the email says it as the
text_storage setting keeps it."""

from __future__ import annotations

import pytest

from services.alerter.email import build_alert_email
from shared.messages import AlertRaised
from shared.settings import Settings

REPORT = {
    "report_id": "r1",
    "prediction_id": "p1",
    "tweet": "@bob my number is +33 6 12 34 56 78",
    "tweet_length": 35,
    "predicted_label": "positive",
    "probability": 0.9,
    "threshold": 0.8,
    "model_name": "airparadis-sentiment",
    "model_version": "1",
    "correct_label": "negative",
    "comment": "write to jane.doe@example.com",
    "reported_at": "2026-11-30T10:00:00+00:00",
}


def email_text(storage: str) -> str:
    alert = AlertRaised(
        kind="wrong_predictions",
        summary="3 wrong predictions reported within 5 min (threshold 3)",
        details={"report_ids": ["r1"], "reports": [REPORT]},
    )
    settings = Settings.model_construct(text_storage=storage)
    message = build_alert_email(alert, settings)
    return "\n".join(
        part.get_content()
        if part.get_content_type() == "text/plain"
        else part.get_payload(decode=True).decode()
        for part in message.iter_parts()
    )


@pytest.mark.parametrize(
    ("storage", "quoted", "absent"),
    [
        ("scrubbed", '"<handle> my number is <phone>"', "jane.doe"),
        ("none", "(text not kept)", "my number"),
        ("full", '"@bob my number is +33 6 12 34 56 78"', "<phone>"),
    ],
)
def test_the_email_quotes_reports_as_the_text_storage_keeps_them(
    storage: str, quoted: str, absent: str
) -> None:
    text = email_text(storage)
    assert quoted in text
    assert absent not in text
