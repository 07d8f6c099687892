"""Faults and hostile input against the workers on a real nats-server and chDB: a store that
refuses writes, ids re-used by someone else, reply subjects outside the inbox, and generated
payloads on every worker's subject. Each case counts what went in and what came out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.client import JetStreamContext

from airparadis.wiring import WORKERS, build_platform
from shared import subjects
from shared.consumers import DURABLES, ConsumerWatch
from shared.messages import (
    AlertRaised,
    DeadLetter,
    FeedbackReported,
    RequestsRefused,
    TweetPreprocessed,
    TweetScored,
    TweetSubmitted,
)
from shared.nats_server import NatsServerProcess
from shared.settings import Settings
from shared.storage import StorageError, Store, apply_migrations, open_store
from tests.integration.platform import count, rows_in
from tests.servers import eventually
from tests.strategies import payloads

pytestmark = [pytest.mark.integration, pytest.mark.fault]


class RefusingStore:
    """The real chDB store, whose inserts fail while `refusing` is set (a full disk, a
    ClickHouse that is down): a raising backend, not a mock of one."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.refusing = False
        self.refused = 0

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self.inner.command(sql, parameters)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.inner.query(sql, parameters)

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.refusing:
            self.refused += 1
            raise StorageError("No space left on device (simulated refusal of the insert)")
        self.inner.insert(table, rows)

    def close(self) -> None:
        self.inner.close()


async def publish_all(js: JetStreamContext, subject: str, payloads: Sequence[bytes]) -> None:
    for payload in payloads:
        await js.publish(subject, payload)


async def stream_count(js: JetStreamContext, stream: str, subject: str | None = None) -> int:
    info = await js.stream_info(stream, subjects_filter=subject)
    if subject is None:
        return int(info.state.messages)
    return int((info.state.subjects or {}).get(subject, 0))


async def test_a_store_refusing_inserts_holds_the_batches_then_stores_each_tweet_once(
    platform_settings: Settings, upstream: Any
) -> None:
    settings = platform_settings.model_copy(update={"ack_wait_s": 2.0})
    store = RefusingStore(open_store(settings))
    apply_migrations(store, settings.retention_days)
    store.refusing = True
    platform = build_platform(settings, ("preprocess", "infer", "store"), with_gateway=False)
    platform.store = store
    await platform.start()
    try:
        js = upstream.config.connection_state.stream
        tweets = [TweetSubmitted(text=f"Seat {i} was comfy") for i in range(300)]
        await publish_all(
            js, subjects.TWEETS_SUBMITTED, [t.model_dump_json().encode() for t in tweets]
        )
        await eventually(lambda: store.refused >= 3, within=30, what="refused inserts")
        watch = ConsumerWatch(upstream.config.connection_state.connection, stall_after_s=2.0)
        await watch.sample()
        await asyncio.sleep(5)  # longer than ack_wait: held batches must stay ours
        assert await count(platform, "predictions") == 0
        [held] = [h for h in await watch.sample() if h.durable == "store-predictions"]
        assert held.stalled and "nothing handed out or acknowledged" in (held.reason or "")
        store.refusing = False
        await eventually(rows_in(platform, "predictions", 300), within=60, what="300 rows")
        [flowing] = [h for h in await watch.sample() if h.durable == "store-predictions"]
        assert not flowing.stalled
        assert await stream_count(js, subjects.STREAM_DLQ) == 0
        info = await js.consumer_info(subjects.STREAM_TWEETS, subjects.DURABLE_STORE_PREDICTIONS)
        assert info.num_redelivered == 0  # held with in-progress acks, not redelivered
    finally:
        await platform.stop()


async def test_an_id_reused_with_other_content_is_refused_and_the_stored_row_kept(
    start_platform: Any, upstream: Any
) -> None:
    async with start_platform() as platform:
        js = upstream.config.connection_state.stream
        original = TweetSubmitted(id="tweet-1", text="Thanks for the upgrade!", source="crm")
        await js.publish(subjects.TWEETS_SUBMITTED, original.model_dump_json().encode())
        await eventually(rows_in(platform, "predictions", 1), what="the original")
        # Within JetStream's duplicate window the derived ids (preprocessed-tweet-1,
        # scored-tweet-1) drop a forgery on the way; past it, the store must refuse it.
        forged = TweetSubmitted(id="tweet-1", text="I hate this airline", source="forger")
        await js.publish(
            subjects.TWEETS_SUBMITTED,
            forged.model_dump_json().encode(),
            headers={"Nats-Msg-Id": "forged-1"},
        )
        assert platform.store is not None
        original_row = platform.store.query("SELECT * FROM predictions")
        scored = TweetScored.model_validate_json(
            (await js.get_last_msg(subjects.STREAM_TWEETS, subjects.TWEETS_SCORED)).data or b""
        ).model_copy(update={"text": "I hate this airline", "source": "forger"})
        await js.publish(
            subjects.TWEETS_SCORED,
            scored.model_dump_json().encode(),
            headers={"Nats-Msg-Id": "forged-2"},
        )
        letter = await first_dead_letter(js, subjects.dead_letter_subject(subjects.TWEETS_SCORED))
        assert "already stored" in letter.reason and letter.worker == "store"
        assert platform.store.query("SELECT * FROM predictions") == original_row
        assert original_row[0]["text"] == original.text and original_row[0]["source"] == "crm"


async def test_a_reply_to_outside_the_inbox_is_refused_and_answers_nobody(
    start_platform: Any, upstream: Any
) -> None:
    async with start_platform():
        nc = upstream.config.connection_state.connection
        js = upstream.config.connection_state.stream
        seen: list[bytes] = []

        async def on_scored(msg: Any) -> None:
            seen.append(msg.data)

        await nc.subscribe(subjects.TWEETS_SCORED, cb=on_scored)
        payload = json.dumps({"id": "t9", "text": "hello", "reply_to": subjects.TWEETS_SCORED})
        await js.publish(subjects.TWEETS_SUBMITTED, payload.encode())
        letter = await first_dead_letter(
            js, subjects.dead_letter_subject(subjects.TWEETS_SUBMITTED)
        )
        assert "reply_to" in letter.reason
        await asyncio.sleep(1)
        assert seen == []  # nothing was scored, nothing published on the forged subject


async def first_dead_letter(js: JetStreamContext, subject: str) -> DeadLetter:
    async def arrived() -> bool:
        return await stream_count(js, subjects.STREAM_DLQ, subject) > 0

    await eventually(arrived, what=f"a dead letter on {subject}")
    msg = await js.get_last_msg(subjects.STREAM_DLQ, subject)
    return DeadLetter.model_validate_json(msg.data or b"")


# --- Generated payloads on every worker's subject ---

EVENTS: dict[str, type[Any]] = {
    subjects.TWEETS_SUBMITTED: TweetSubmitted,
    subjects.TWEETS_PREPROCESSED: TweetPreprocessed,
    subjects.TWEETS_SCORED: TweetScored,
    subjects.FEEDBACK_REPORTED: FeedbackReported,
    subjects.ALERTS_RAISED: AlertRaised,
    subjects.GATEWAY_REFUSED: RequestsRefused,
}
KEYS = sorted({key for model in EVENTS.values() for key in model.model_fields} | {"schema_version"})

PAYLOADS = payloads(KEYS)


def valid(subject: str, payload: bytes) -> bool:
    try:
        EVENTS[subject].model_validate_json(payload)
    except ValueError:
        return False
    return True


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.fixed_dictionaries({s: st.lists(PAYLOADS, min_size=40, max_size=40) for s in EVENTS})
)
async def test_generated_payloads_on_every_subject_end_in_the_dead_letter_queue_with_a_reason(
    platform_settings: Settings, nats: NatsServerProcess, batches: dict[str, list[bytes]]
) -> None:
    platform = build_platform(platform_settings, WORKERS, with_gateway=False)
    await platform.start()
    nc = await nats_connect(nats.url)
    try:
        js = nc.jetstream()
        before = await stream_count(js, subjects.STREAM_DLQ)
        expected = 0
        for subject, batch in batches.items():
            await publish_all(js, subject, batch)
            expected += sum(not valid(subject, p) for p in batch)

        async def all_settled() -> bool:
            return (
                await settled(js)
                and await stream_count(js, subjects.STREAM_DLQ) >= before + expected
            )

        await eventually(all_settled, within=60, what="every message settled")
        letters = await stream_count(js, subjects.STREAM_DLQ) - before
        assert letters >= expected  # valid ones may still be refused (a stored id reused)
        assert platform.failed_task is None  # no worker died
        last = await js.get_last_msg(subjects.STREAM_DLQ, "dlq.>")
        assert DeadLetter.model_validate_json(last.data or b"").reason
    finally:
        await nc.close()
        await platform.stop()


async def nats_connect(url: str) -> Any:
    return await nats.connect(url)


async def settled(js: JetStreamContext) -> bool:
    """Every durable consumer handed out and settled everything."""
    for stream, durable in DURABLES:
        info = await js.consumer_info(stream, durable)
        if info.num_pending or info.num_ack_pending:
            return False
    return True
