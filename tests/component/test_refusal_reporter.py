"""The gateway's refusal summaries on FastStream's in-memory broker: a flood of refused requests
is one message a flush, and whatever the bus does (down, an acknowledgement lost), every refusal
counted goes out once: count in, count out.

JetStream is played by a subscriber on gateway.refused that keeps one message per Nats-Msg-Id,
as JetStream's duplicate window does. It can be down (the client raises before sending, as
nats-py does while disconnected) or lose the acknowledgement of a message it stored (the client
times out, not knowing whether it was stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import nats.errors
import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.refusals import RefusalReporter, RefusalTally
from shared import subjects
from shared.bus import MSG_ID_HEADER, Streams
from shared.messages import RequestsRefused
from shared.settings import Settings
from tests.servers import eventually

BusState = Literal["up", "down", "ack_lost"]


@dataclass
class FakeJetStream:
    state: BusState = "up"
    stored: dict[str, RequestsRefused] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)  # the Nats-Msg-Id of every attempt

    @property
    def refused(self) -> int:
        """Refusals in the stored summaries, each summary once."""
        return sum(summary.total for summary in self.stored.values())


@dataclass
class Gateway:
    tally: RefusalTally
    reporter: RefusalReporter
    bus: FakeJetStream

    def refuse(self, n: int, limit: Literal["api", "feedback"] = "api", key: str = "") -> None:
        for _ in range(n):
            self.tally.count(limit, "key" if key else "address", key)


@asynccontextmanager
async def gateway_on_memory_bus(every_s: float = 10.0) -> AsyncIterator[Gateway]:
    broker = NatsBroker()
    bus = FakeJetStream()

    @broker.subscriber(subjects.GATEWAY_REFUSED, stream=Streams(Settings()).gateway)
    async def jetstream(summary: RequestsRefused, msg: NatsMessage) -> None:
        msg_id = msg.headers[MSG_ID_HEADER]
        bus.sent.append(msg_id)
        if bus.state == "down":
            raise nats.errors.OutboundBufferLimitError
        bus.stored.setdefault(msg_id, summary)  # a known id is a duplicate: dropped
        if bus.state == "ack_lost":
            raise nats.errors.TimeoutError

    tally = RefusalTally("gw-test")
    async with TestNatsBroker(broker) as connected:
        yield Gateway(tally, RefusalReporter(tally, connected, every_s=every_s, timeout_s=1), bus)


async def test_a_flood_of_refusals_is_one_summary_a_flush() -> None:
    async with gateway_on_memory_bus() as gw:
        gw.refuse(1000)
        gw.refuse(40, "feedback", key="crm")
        gw.refuse(2, key="crm")

        assert await gw.reporter.flush()
        assert await gw.reporter.flush()  # nothing refused since: nothing sent

    [summary] = gw.bus.stored.values()
    assert gw.bus.sent == [summary.id]
    assert {(c.limit, c.who, c.key_name, c.count) for c in summary.counts} == {
        ("api", "address", "", 1000),
        ("feedback", "key", "crm", 40),
        ("api", "key", "crm", 2),
    }
    assert summary.gateway == "gw-test" and summary.window_start <= summary.window_end


async def test_counts_refused_while_the_bus_is_down_go_in_the_next_summary_under_the_same_id() -> (
    None
):
    async with gateway_on_memory_bus() as gw:
        gw.refuse(5)
        gw.bus.state = "down"
        assert not await gw.reporter.flush()
        gw.refuse(3)
        assert not await gw.reporter.flush()
        gw.bus.state = "up"
        gw.refuse(2, key="crm")
        assert await gw.reporter.flush()

    [summary] = gw.bus.stored.values()
    assert summary.total == 10 == gw.bus.refused
    assert len(set(gw.bus.sent)) == 1  # three attempts, one window, one id


async def test_a_summary_whose_ack_was_lost_is_sent_again_as_it_was_and_counted_once() -> None:
    async with gateway_on_memory_bus() as gw:
        gw.refuse(5)
        gw.bus.state = "ack_lost"  # stored, but the gateway cannot know
        assert not await gw.reporter.flush()
        gw.refuse(7)  # must not ride on the first id: JetStream would drop them with it
        gw.bus.state = "up"
        assert await gw.reporter.flush()

    first, again, second = gw.bus.sent
    assert first == again != second
    assert [gw.bus.stored[first].total, gw.bus.stored[second].total] == [5, 7]
    assert gw.bus.refused == 12


async def test_the_last_summary_goes_at_stop() -> None:
    async with gateway_on_memory_bus() as gw:
        gw.refuse(3, "feedback")
        await gw.reporter.stop()

    assert gw.bus.refused == 3


async def test_summaries_go_every_flush_interval_without_being_asked() -> None:
    async with gateway_on_memory_bus(every_s=0.05) as gw:
        running = asyncio.create_task(gw.reporter.run_forever())
        try:
            gw.refuse(4)
            await eventually(lambda: gw.bus.refused == 4, within=5, what="a first summary")
            gw.refuse(6)
            await eventually(lambda: gw.bus.refused == 10, within=5, what="a second summary")
        finally:
            running.cancel()

    assert len(gw.bus.stored) == 2


Step = tuple[Literal["refuse"], int] | tuple[Literal["flush"], BusState]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("refuse"), st.integers(1, 50)),
        st.tuples(st.just("flush"), st.sampled_from(["up", "down", "ack_lost"])),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
async def test_whatever_the_bus_does_every_refusal_is_stored_once(steps: list[Step]) -> None:
    refused = 0
    async with gateway_on_memory_bus() as gw:
        for action, value in steps:
            if action == "refuse":
                gw.refuse(int(value), key="crm" if refused % 2 else "")
                refused += int(value)
            else:
                gw.bus.state = value  # type: ignore[assignment]
                await gw.reporter.flush()
        gw.bus.state = "up"
        assert await gw.reporter.flush()

    assert gw.bus.refused == refused


@pytest.mark.parametrize("state", ["down", "ack_lost"])
async def test_what_the_bus_refuses_at_stop_is_logged_with_its_count(
    state: BusState, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway_on_memory_bus() as gw:
        gw.refuse(9)
        gw.bus.state = state
        await gw.reporter.stop()

    [record] = [r for r in caplog.records if r.message == "refusals not published at shutdown"]
    assert record.refused == 9  # type: ignore[attr-defined]
