"""A stage whose outputs the bus cannot store for a while (the stream that should capture them
answers nothing, as while a cluster elects its leader) holds its batch and publishes again:
the input is neither redelivered nor dead-lettered, and the output is stored once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from shared import subjects
from shared.jetstream import (
    BatchStage,
    JetStreamPublisher,
    Outcome,
    Outgoing,
    PullConsumer,
    hot_consumer_config,
)
from shared.settings import Settings
from tests.servers import eventually, nats_server

pytestmark = [pytest.mark.integration, pytest.mark.fault]


async def test_outputs_nobody_stores_yet_hold_the_batch_instead_of_spending_deliveries(
    tmp_path: Path, settings: Settings
) -> None:
    with nats_server(tmp_path / "nats", streams=False) as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="IN", subjects=["in.>"])
        await js.add_stream(name="DLQ", subjects=["dlq.>"])
        seen: list[int] = []

        async def forward(batch: Sequence[Msg]) -> Outcome:
            seen.extend(raw.metadata.num_delivered for raw in batch)
            return Outcome(
                outputs=[
                    Outgoing("out.copy", raw.data, f"copy-{raw.metadata.sequence.stream}", i)
                    for i, raw in enumerate(batch)
                ]
            )

        # Two deliveries at most, half-second back-off: before, a few seconds of a bus that
        # confirms nothing were enough to dead-letter the message.
        strict = settings.model_copy(
            update={"max_deliveries": 2, "ack_wait_s": 3.0, "publish_timeout_s": 0.5}
        )
        config = hot_consumer_config("forward", "in.>", strict)
        publisher = JetStreamPublisher(nc)
        await publisher.start()
        stage = BatchStage(
            worker="test",
            consumer=PullConsumer(nc, "IN", config, batch_size=10),
            publisher=publisher,
            handle=forward,
            settings=strict,
        )
        running = asyncio.ensure_future(stage.run())
        try:
            await js.publish("in.one", b"hello", headers={"Nats-Msg-Id": "one"})
            await eventually(lambda: bool(seen), within=10, what="the message handled")
            await asyncio.sleep(6.0)  # no stream captures out.>: nothing can be stored
            info = await js.consumer_info("IN", "forward")
            assert info.num_ack_pending == 1 and info.num_redelivered == 0
            await js.add_stream(name="OUT", subjects=["out.>"])

            async def stored() -> bool:
                return (await js.stream_info("OUT")).state.messages == 1

            await eventually(stored, within=20, what="the output stored")

            async def settled() -> bool:
                state = await js.consumer_info("IN", "forward")
                return state.num_ack_pending == 0 and state.num_pending == 0

            await eventually(settled, within=10, what="the input acknowledged")
            assert seen == [1]  # handled once, on its first delivery
            assert (await js.consumer_info("IN", "forward")).num_redelivered == 0
            assert (await js.stream_info(subjects.STREAM_DLQ)).state.messages == 0
        finally:
            stage.stop()
            await asyncio.wait_for(running, timeout=15)
            await nc.close()
