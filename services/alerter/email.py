"""The alert email: a summary people can read, and the full JSON the team's tools can parse.

The texts an alert quotes are put in the email as the `text_storage` setting keeps them
(shared/scrub.py): the alerter minimised them already; this is the last guard."""

from __future__ import annotations

import json
from email.message import EmailMessage

import aiosmtplib

from shared.messages import AlertRaised
from shared.scrub import TextPolicy
from shared.settings import Settings


class MailerUnavailable(ConnectionError):
    """The SMTP server did not take the email; the alert is retried later."""


def render_summary(alert: AlertRaised) -> str:
    lines = [
        f"Air Paradis sentiment platform: {alert.summary}",
        "",
        f"Alert {alert.id} ({alert.kind}) raised at {alert.raised_at.isoformat()}.",
    ]
    for report in alert.details.get("reports", []):
        # Under text_storage=none no text is kept: say so rather than quote "".
        tweet = f'"{report["tweet"]}"' if report["tweet"] else "(text not kept)"
        lines.append(
            f"- {tweet} ({report['tweet_length']} chars): predicted "
            f"{report['predicted_label']} (p={report['probability']:.3f}, threshold "
            f"{report['threshold']:.3f}) by {report['model_name']} v{report['model_version']}, "
            f"reported {report['reported_at']}"
            + (f", correct label: {report['correct_label']}" if report.get("correct_label") else "")
        )
        if report.get("reliable") is False:
            lines.append(
                f"  NOTE: {report.get('reliability_note') or 'not a language the model learnt.'}"
            )
    unreadable = sum(r.get("reliable") is False for r in alert.details.get("reports", []))
    if unreadable:
        lines += [
            "",
            f"{unreadable} of these tweets {'was' if unreadable == 1 else 'were'} in a language "
            "the model did not learn: its verdict was a guess, so the report says more about the "
            "language than about the model.",
        ]
    figures = {k: v for k, v in alert.details.items() if k not in {"reports", "report_ids"}}
    if figures:
        lines += ["", "Figures: " + ", ".join(f"{k}={v}" for k, v in figures.items())]
    lines += ["", "The full alert is attached as alert.json and repeated below.", ""]
    return "\n".join(lines)


def build_alert_email(alert: AlertRaised, settings: Settings) -> EmailMessage:
    details = TextPolicy.of(settings).stored_details(alert.details)
    alert = alert.model_copy(update={"details": details})
    payload = json.dumps(alert.model_dump(mode="json"), indent=2, ensure_ascii=False)
    message = EmailMessage()
    message["Subject"] = f"[Air Paradis] {alert.summary}"
    message["From"] = settings.alert_from
    message["To"] = ", ".join(settings.alert_to)
    message["X-Airparadis-Alert-Id"] = alert.id
    message.set_content(render_summary(alert) + payload + "\n")
    message.add_attachment(
        payload.encode("utf-8"), maintype="application", subtype="json", filename="alert.json"
    )
    return message


async def send_alert_email(alert: AlertRaised, settings: Settings) -> None:
    try:
        await aiosmtplib.send(
            build_alert_email(alert, settings),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user,
            password=settings.smtp_password,
            start_tls=settings.smtp_starttls,
            timeout=10,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailerUnavailable(
            f"SMTP {settings.smtp_host}:{settings.smtp_port} refused the alert: {exc}"
        ) from exc
