"""The platform against real servers: nats-server with JetStream, chDB, MLflow on SQLite and an
aiosmtpd SMTP server, all started by fixtures on free ports in temporary folders."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faststream.nats import NatsBroker

from airparadis.wiring import build_platform
from shared import subjects
from shared.bus import publish_event
from shared.messages import (
    DeadLetter,
    ExplainRequested,
    ExplanationReady,
    FeedbackReported,
    PredictionSnapshot,
    RequestFailed,
    TweetSubmitted,
)
from shared.nats_server import free_port
from shared.registry import Registry
from shared.settings import Settings
from tests.integration.platform import StartPlatform, count, rows_in
from tests.servers import Inbox, eventually, json_attachment, nats_server, smtp_server

pytestmark = pytest.mark.integration


def report(n: int, prediction_id: str = "p") -> FeedbackReported:
    now = datetime.now(UTC)
    return FeedbackReported(
        id=f"report-{n}",
        prediction_id=f"{prediction_id}{n}",
        correct_label="negative",
        comment="reads as sarcasm",
        prediction=PredictionSnapshot(
            text="What a wonderful four-hour delay, thank you Air Paradis " * 3,
            label="positive",
            probability=0.93,
            threshold=0.8,
            model_name="airparadis-sentiment",
            model_version="1",
            scored_at=now,
        ),
    )


async def test_tweet_published_on_submitted_ends_as_row_in_clickhouse(
    start_platform: StartPlatform, upstream: NatsBroker
) -> None:
    async with start_platform() as platform:
        tweet = TweetSubmitted(text="Crew was lovely and the seats were comfy", source="test")
        await publish_event(
            upstream, tweet, subjects.TWEETS_SUBMITTED, msg_id=tweet.id, stream="TWEETS"
        )
        await eventually(rows_in(platform, "predictions", 1), what="a stored prediction")
        assert platform.repository is not None
        stored = await platform.repository.get_prediction(tweet.id)
    assert stored is not None
    assert stored.text == tweet.text
    assert stored.model_name == "airparadis-sentiment"
    assert stored.label in {"positive", "negative"}
    assert 0.0 <= stored.probability <= 1.0


async def test_three_reports_send_exactly_one_email_whose_json_parses(
    start_platform: StartPlatform, upstream: NatsBroker, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    async with start_platform() as platform:
        for n in range(4):  # the fourth falls in the cooldown
            r = report(n)
            await publish_event(upstream, r, subjects.FEEDBACK_REPORTED, msg_id=r.id)
        await eventually(lambda: len(inbox.messages) >= 1, what="an alert email")
        await eventually(rows_in(platform, "feedback", 4), what="4 stored reports")
        await eventually(rows_in(platform, "alerts", 1), what="1 stored alert")

    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert "3 wrong predictions" in message["Subject"]
    alert = json_attachment(message)
    assert alert["kind"] == "wrong_predictions"
    assert alert["details"]["report_ids"] == ["report-0", "report-1", "report-2"]
    first = alert["details"]["reports"][0]
    assert len(first["tweet"]) == 80
    assert first["tweet_length"] > 80
    assert {"predicted_label", "probability", "model_name", "model_version", "threshold"} <= set(
        first
    )


async def test_alert_email_is_retried_until_the_smtp_server_is_back(
    start_platform: StartPlatform, upstream: NatsBroker, platform_settings: Settings
) -> None:
    port = free_port()  # nothing listens there yet
    settings = platform_settings.model_copy(update={"smtp_port": port})
    async with start_platform(settings=settings) as platform:
        for n in range(3):
            r = report(n)
            await publish_event(upstream, r, subjects.FEEDBACK_REPORTED, msg_id=r.id)
        await eventually(rows_in(platform, "alerts", 1), what="the alert")
        with smtp_server(port) as (_, inbox):
            await eventually(lambda: len(inbox.messages) == 1, what="the retried email")


async def test_window_survives_a_restart_of_the_alerter(
    start_platform: StartPlatform, upstream: NatsBroker, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    async with start_platform(("alerter",)) as platform:
        for n in range(2):
            r = report(n)
            await publish_event(upstream, r, subjects.FEEDBACK_REPORTED, msg_id=r.id)
        assert platform.alerter_state is not None
        state = platform.alerter_state

        async def two_in_window() -> bool:
            window, _ = await state.load_window()
            return len(window.entries) == 2

        await eventually(two_in_window, what="two reports in the window")
    async with start_platform(("alerter",)):
        r = report(2)
        await publish_event(upstream, r, subjects.FEEDBACK_REPORTED, msg_id=r.id)
        await eventually(lambda: len(inbox.messages) == 1, what="the alert after restart")


async def test_worker_stopped_mid_stream_and_restarted_loses_and_doubles_nothing(
    start_platform: StartPlatform, upstream: NatsBroker, platform_settings: Settings
) -> None:
    total = 300
    tweets = [TweetSubmitted(text=f"Flight {i} was on time, thanks!") for i in range(total)]
    js = upstream.config.connection_state.stream
    async with start_platform(("preprocess",)):  # declares the streams
        pass
    for t in tweets:
        await publish_event(upstream, t, subjects.TWEETS_SUBMITTED, msg_id=t.id, stream="TWEETS")
    settings = platform_settings.model_copy(update={"batch_max_size": 8, "store_batch_size": 16})
    async with start_platform(settings=settings) as platform:

        async def some_stored() -> bool:
            return await count(platform, "predictions") > 0

        await eventually(some_stored, what="some stored predictions")
        stopped_at = await count(platform, "predictions")
    assert stopped_at < total, "the pipeline finished before it could be stopped mid-stream"
    async with start_platform(settings=settings) as platform:
        await eventually(rows_in(platform, "predictions", total), within=60, what="all predictions")
        assert platform.store is not None
        rows = platform.store.query("SELECT uniqExact(id) AS ids FROM predictions")
    assert rows == [{"ids": total}]
    info = await js.stream_info("TWEETS", subjects_filter=subjects.TWEETS_SCORED)
    assert info.state.subjects == {subjects.TWEETS_SCORED: total}  # no tweet scored twice


async def test_unprocessable_message_lands_in_the_dead_letter_stream(
    start_platform: StartPlatform, upstream: NatsBroker
) -> None:
    async with start_platform(("preprocess",)):
        await upstream.publish(b"{not json", subjects.TWEETS_SUBMITTED, stream="TWEETS")
        await upstream.publish({"text": ""}, subjects.TWEETS_SUBMITTED, stream="TWEETS")
        js = upstream.config.connection_state.stream

        async def two_letters() -> bool:
            info = await js.stream_info("DLQ")
            return info.state.messages == 2

        await eventually(two_letters, what="two dead letters")
    first = await js.get_msg("DLQ", seq=1)
    second = await js.get_msg("DLQ", seq=2)
    letters = [DeadLetter.model_validate_json(m.data or b"") for m in (first, second)]
    assert {letter.subject for letter in letters} == {subjects.TWEETS_SUBMITTED}
    assert first.subject == "dlq.tweets.submitted"
    assert letters[0].payload == "{not json"
    assert letters[0].reason.startswith("malformed JSON")
    assert "empty" in letters[1].reason


def test_a_promotion_nobody_can_hear_is_not_announced_and_still_made(
    platform_settings: Settings, second_version: str, tmp_path: Path
) -> None:
    # The first start: nats-server runs, but `bus init` has not made the streams yet.
    with nats_server(tmp_path / "bare-nats", streams=False) as bare:
        registry_of = Registry.of(platform_settings.model_copy(update={"nats_url": bare.url}))
        assert registry_of.promote(second_version).announced_on is None
    champion = registry_of.champion()
    assert champion is not None and champion.version == second_version
    # No server at all (and none configured): nothing to tell either.
    silent = Registry.of(
        platform_settings.model_copy(update={"nats_url": "", "nats_port": free_port()})
    )
    assert silent.announce(second_version) is None


async def test_promotion_event_swaps_the_model_without_restart(
    start_platform: StartPlatform,
    upstream: NatsBroker,
    platform_settings: Settings,
    registry: str,
    second_version: str,
) -> None:
    async with start_platform() as platform:
        first = TweetSubmitted(text="Nice crew")
        await publish_event(upstream, first, subjects.TWEETS_SUBMITTED, msg_id=first.id)
        await eventually(rows_in(platform, "predictions", 1), what="first prediction")

        # As `airparadis models promote` does: the registry sets the alias and announces it.
        promotion = await asyncio.to_thread(Registry.of(platform_settings).promote, second_version)
        assert promotion.announced_on == platform_settings.nats_url
        await eventually(
            lambda: (
                platform.holder.current is not None
                and platform.holder.current.version == second_version
            ),
            what="the swap",
        )
        second = TweetSubmitted(text="Nice crew")
        await publish_event(upstream, second, subjects.TWEETS_SUBMITTED, msg_id=second.id)
        await eventually(rows_in(platform, "predictions", 2), what="second prediction")
        assert platform.repository is not None
        before = await platform.repository.get_prediction(first.id)
        after = await platform.repository.get_prediction(second.id)
    assert before is not None and after is not None
    assert after.model_version == second_version
    assert before.model_version != second_version


async def infer_answers(upstream: NatsBroker) -> None:
    """Wait as a client waits for readiness: until an infer worker answers its status (right
    after a start, the server may not route a request to a new subscription for a moment)."""

    async def answered() -> bool:
        try:
            await upstream.request(None, subjects.INFER_STATUS, timeout=1)
        except Exception:
            return False
        return True

    await eventually(answered, what="an infer worker answering")


async def test_explain_request_is_answered_by_infer_with_linear_contributions(
    start_platform: StartPlatform, upstream: NatsBroker
) -> None:
    async with start_platform(("infer",)):
        await infer_answers(upstream)
        asked = ExplainRequested(text="Loved the crew, lost my bag")
        reply = await upstream.request(
            asked.model_dump(mode="json"), subjects.EXPLAIN_REQUESTED, timeout=10
        )
        ready = ExplanationReady.model_validate_json(reply.body)
    assert ready.method == "linear"  # the registered model is a logistic regression
    assert [w.word for w in ready.words] == ["Loved", "the", "crew,", "lost", "my", "bag"]
    assert ready.model_name == "airparadis-sentiment"
    assert 0 <= ready.probability <= 1


async def test_a_malformed_explain_request_gets_an_error_reply(
    start_platform: StartPlatform, upstream: NatsBroker
) -> None:
    async with start_platform(("infer",)):
        await infer_answers(upstream)
        reply = await upstream.request({"text": ""}, subjects.EXPLAIN_REQUESTED, timeout=10)
    failed = RequestFailed.model_validate_json(reply.body)
    assert failed.kind == "invalid_request"
    assert "text" in failed.reason


async def test_monitor_figures_come_from_clickhouse(
    platform_settings: Settings, upstream: NatsBroker
) -> None:
    import httpx

    platform = build_platform(platform_settings)
    await platform.start()
    try:
        for n in range(5):
            t = TweetSubmitted(text=f"Great flight number {n}")
            await publish_event(upstream, t, subjects.TWEETS_SUBMITTED, msg_id=t.id)
        await eventually(rows_in(platform, "predictions", 5), what="5 stored predictions")
        assert platform.gateway is not None
        transport = httpx.ASGITransport(app=platform.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            page = await client.get("/monitor")
            figures = (await client.get("/v1/monitor", params={"hours": 1})).json()
    finally:
        await platform.stop()
    assert page.status_code == 200 and "monitor" in page.text
    assert figures["model_versions"] == ["1"]
    assert sum(p["predictions"] for p in figures["traffic"]) > 0
    assert figures["latency"] and figures["latency"][0]["p99"] >= figures["latency"][0]["p50"]
    assert figures["error_rate"][0]["error_rate"] == 0
