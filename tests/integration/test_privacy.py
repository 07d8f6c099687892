"""Personal data against real servers (nats-server, chDB, aiosmtpd): what each text_storage
keeps in ClickHouse, in alert emails and on the bus."""

from __future__ import annotations

import json
from email.message import Message
from typing import Any

import pytest
from faststream.nats import NatsBroker

from airparadis.wiring import Platform
from shared import subjects
from shared.bus import publish_event
from shared.messages import FeedbackReported, TweetSubmitted
from shared.settings import Settings
from shared.storage import Store
from tests.integration.platform import StartPlatform, rows_in
from tests.servers import Inbox, eventually, json_attachment

pytestmark = pytest.mark.integration

WRITTEN = "@bob call me on +33 6 12 34 56 78 about AP214 at 10:45, jane.doe@example.com"
SCRUBBED = "<handle> call me on <phone> about AP214 at 10:45, <email>"
RAW_BITS = ("@bob", "12 34 56", "jane.doe@example.com", "jane.doe")


async def publish_tweet(upstream: NatsBroker, text: str, tweet_id: str) -> None:
    tweet = TweetSubmitted(id=tweet_id, text=text, source="crm")
    await publish_event(upstream, tweet, subjects.TWEETS_SUBMITTED, msg_id=tweet.id)


async def publish_report(
    upstream: NatsBroker, platform: Platform, prediction_id: str, report_id: str, comment: str
) -> None:
    """A report as an upstream app publishes it: the prediction as it was served, the comment
    as written."""
    assert platform.repository is not None
    snapshot = await platform.repository.get_prediction(prediction_id)
    assert snapshot is not None
    report = FeedbackReported(
        id=report_id,
        prediction_id=prediction_id,
        correct_label="negative",
        comment=comment,
        prediction=snapshot,
    )
    await publish_event(upstream, report, subjects.FEEDBACK_REPORTED, msg_id=report.id)


def rows(store: Store, sql: str, **parameters: Any) -> list[dict[str, Any]]:
    return store.query(sql, parameters)


@pytest.mark.parametrize(
    ("storage", "kept"), [("scrubbed", SCRUBBED), ("full", WRITTEN), ("none", "")]
)
async def test_a_tweet_from_an_upstream_app_is_stored_as_the_text_storage_says(
    start_platform: StartPlatform,
    upstream: NatsBroker,
    platform_settings: Settings,
    storage: str,
    kept: str,
) -> None:
    settings = platform_settings.model_copy(update={"text_storage": storage})
    async with start_platform(settings=settings) as platform:
        await publish_tweet(upstream, WRITTEN, "t-1")
        await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")
        assert platform.store is not None
        [row] = rows(platform.store, "SELECT text, n_mentions, length FROM predictions FINAL")
    assert row["text"] == kept
    # The features were measured all the same (on the scrubbed text unless full).
    assert row["n_mentions"] == 1 and row["length"] > 0


async def test_reports_alerts_and_the_alert_email_quote_scrubbed_texts_by_default(
    start_platform: StartPlatform, upstream: NatsBroker, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    async with start_platform() as platform:
        for n in range(3):
            await publish_tweet(upstream, f"{WRITTEN} #{n}", f"t-{n}")
        await eventually(rows_in(platform, "predictions", 3), what="3 predictions")
        for n in range(3):
            await publish_report(
                upstream, platform, f"t-{n}", f"r-{n}", "reads wrong, ask jane[at]example[.]com"
            )
        await eventually(lambda: len(inbox.messages) == 1, what="the alert email")
        await eventually(rows_in(platform, "alerts", 1), what="the stored alert")
        await eventually(rows_in(platform, "feedback", 3), what="3 stored reports")
        assert platform.store is not None
        feedback = rows(platform.store, "SELECT text, comment FROM feedback FINAL")
        [alert] = rows(platform.store, "SELECT details FROM alerts FINAL")
    email = inbox.messages[0]
    reports = json_attachment(email)["details"]["reports"]
    assert {r["comment"] for r in reports} == {"reads wrong, ask <email>"}
    assert all(r["tweet"].startswith("<handle> call me on <phone>") for r in reports)
    assert {f["comment"] for f in feedback} == {"reads wrong, ask <email>"}
    assert all(f["text"].startswith(SCRUBBED) for f in feedback)
    for written in (*RAW_BITS, "jane[at]"):
        assert written not in everything_in(email)
        assert written not in alert["details"]


async def test_the_bus_keeps_no_tweet_as_an_upstream_app_wrote_it_once_processed(
    start_platform: StartPlatform, upstream: NatsBroker, platform_settings: Settings
) -> None:
    settings = platform_settings.model_copy(update={"ingress_purge_s": 5})
    js = upstream.config.connection_state.stream
    async with start_platform(settings=settings) as platform:
        await publish_tweet(upstream, WRITTEN, "t-1")
        await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")

        async def submitted_left() -> int:
            info = await js.stream_info(subjects.STREAM_TWEETS, subjects_filter=">")
            return int((info.state.subjects or {}).get(subjects.TWEETS_SUBMITTED, 0))

        async def purged() -> bool:
            return await submitted_left() == 0

        await eventually(purged, within=20, what="tweets.submitted purged once processed")
        info = await js.stream_info(subjects.STREAM_TWEETS)
        kept = [
            await js.get_msg(subjects.STREAM_TWEETS, seq=seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    assert {m.subject for m in kept} == {subjects.TWEETS_PREPROCESSED, subjects.TWEETS_SCORED}
    for message in kept:
        assert json.loads(message.data or b"")["text"] == SCRUBBED


def everything_in(message: Message) -> str:
    """Every part of an email, decoded."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts.append(payload.decode("utf-8", errors="replace"))
    return "\n".join(parts)
