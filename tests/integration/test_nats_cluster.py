"""The platform on a real 3-node NATS cluster: streams with three replicas, made by
`airparadis bus init`, the workers bound to them through the list of the nodes' URLs.

10,000 tweets go in; half-way the node that leads the TWEETS stream is killed -9. Every tweet
must come out stored exactly once, no consumer may be left with work it does not do, and the
killed node, started again, must catch up with the others (its own copy of the stream, read
from its own monitoring endpoint, holds every message).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from airparadis.bus_init import init_bus
from shared import subjects
from shared.jetstream import JetStreamPublisher, Outgoing
from shared.messages import TweetSubmitted
from shared.settings import Settings
from tests.integration.platform import StartPlatform
from tests.servers import ClusterNode, eventually, nats_cluster

pytestmark = [pytest.mark.integration, pytest.mark.fault]

TOTAL = 10_000
TWEETS_DURABLES = [
    subjects.DURABLE_PREPROCESS,
    subjects.DURABLE_INFER,
    subjects.DURABLE_SHADOW,
    subjects.DURABLE_STORE_PREDICTIONS,
    subjects.DURABLE_STORE_SHADOW,
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[ClusterNode]]:
    with nats_cluster(tmp_path / "cluster") as nodes:
        yield nodes


@pytest.fixture
async def client(cluster: list[ClusterNode]) -> AsyncIterator[Client]:
    """An upstream app that knows every node, as AIRPARADIS_NATS_URL lists them."""
    nc = await nats.connect(
        [node.url for node in cluster], reconnect_time_wait=0.2, max_reconnect_attempts=-1
    )
    try:
        yield nc
    finally:
        await nc.close()


async def publish_every_one(publisher: JetStreamPublisher, tweets: list[TweetSubmitted]) -> int:
    """Publish until JetStream confirmed each tweet (a re-publish carries the same Nats-Msg-Id,
    so one the old leader stored but did not confirm is dropped as a duplicate); the rounds."""
    waiting = [
        Outgoing(subjects.TWEETS_SUBMITTED, t.model_dump_json().encode(), msg_id=t.id)
        for t in tweets
    ]
    rounds, deadline = 0, time.monotonic() + 120
    while waiting:
        assert time.monotonic() < deadline, f"{len(waiting)} tweets never confirmed"
        rounds += 1
        results = await publisher.publish(waiting, wait_s=5.0)
        waiting = [item for item, result in zip(waiting, results, strict=True) if not result.ok]
    return rounds


async def test_a_node_killed_mid_stream_loses_and_doubles_nothing_and_catches_up(
    cluster: list[ClusterNode],
    client: Client,
    settings: Settings,
    registry: str,
    start_platform: StartPlatform,
) -> None:
    urls = ",".join(node.url for node in cluster)
    on_cluster = settings.model_copy(
        update={
            "nats_url": urls,
            "stream_replicas": 3,
            "mlflow_tracking_uri": registry,
            "nats_reconnect_wait_s": 0.2,
            "batch_max_wait_ms": 10,
            "store_flush_ms": 50,
            "ack_wait_s": 5.0,
        }
    )
    made = {o.name: o for o in await init_bus(on_cluster, wait_s=60)}
    assert {o.replicas for o in made.values()} == {3}
    js = client.jetstream(timeout=10)
    before = await js.stream_info(subjects.STREAM_TWEETS)
    assert before.cluster is not None and len(before.cluster.replicas or []) == 2

    source = f"cluster-{uuid.uuid4().hex[:8]}"
    tweets = [
        TweetSubmitted(text=f"Flight {i} landed on time, thank you crew!", source=source)
        for i in range(TOTAL)
    ]
    publisher = JetStreamPublisher(client)
    await publisher.start()
    async with start_platform(settings=on_cluster, workers=("preprocess", "infer", "store")) as (
        platform
    ):
        assert platform.store is not None

        def stored() -> dict[str, int]:
            # No FINAL: the store never inserts an id twice, so every row counts.
            [row] = platform.store.query(  # type: ignore[union-attr]
                "SELECT count() AS rows, uniqExact(id) AS ids FROM predictions"
                f" WHERE source = '{source}'"
            )
            return {"rows": int(row["rows"]), "ids": int(row["ids"])}

        await publish_every_one(publisher, tweets[: TOTAL // 2])
        leader_name = (await js.stream_info(subjects.STREAM_TWEETS)).cluster.leader  # type: ignore[union-attr]
        [leader] = [node for node in cluster if node.name == leader_name]
        leader.kill()
        await publish_every_one(publisher, tweets[TOTAL // 2 :])

        await eventually(lambda: stored()["ids"] >= TOTAL, within=240, what=f"{TOTAL} rows")
        assert stored() == {"rows": TOTAL, "ids": TOTAL}

        async def settled() -> bool:
            for durable in TWEETS_DURABLES:
                info = await js.consumer_info(subjects.STREAM_TWEETS, durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        await eventually(settled, within=60, what="every TWEETS consumer with nothing left")
        # Not one good tweet dead-lettered for the bus's fault (a leader change).
        assert (await js.stream_info(subjects.STREAM_DLQ)).state.messages == 0
        after = await js.stream_info(subjects.STREAM_TWEETS)
        assert after.cluster is not None and after.cluster.leader != leader_name

        leader.server.start()
        survivor = next(node for node in cluster if node is not leader)
        [state] = {survivor.stream_state(subjects.STREAM_TWEETS)}
        assert state is not None and state[1] >= 2 * TOTAL  # submitted and preprocessed

        def caught_up() -> bool:
            states = {node.stream_state(subjects.STREAM_TWEETS) for node in cluster}
            return len(states) == 1 and None not in states

        await eventually(caught_up, within=60, what=f"{leader_name} caught up")
        info = await js.stream_info(subjects.STREAM_TWEETS)
        assert info.cluster is not None
        assert all(peer.current and not peer.offline for peer in info.cluster.replicas or [])
        assert stored() == {"rows": TOTAL, "ids": TOTAL}


async def test_bus_init_raises_a_stream_from_one_replica_to_three_in_place(
    cluster: list[ClusterNode], client: Client, settings: Settings
) -> None:
    """A platform that started on one replica and moves to three: `bus init` changes each
    stream in place; the messages it held are on every node afterwards."""
    one = settings.model_copy(
        update={"nats_url": ",".join(node.url for node in cluster), "stream_replicas": 1}
    )
    await init_bus(one, wait_s=60)
    publisher = JetStreamPublisher(client)
    await publisher.start()
    tweets = [TweetSubmitted(text=f"Gate {i} opened", source="r1") for i in range(200)]
    await publish_every_one(publisher, tweets)

    three = one.model_copy(update={"stream_replicas": 3})
    outcomes = {o.name: o for o in await init_bus(three, wait_s=60)}
    assert outcomes[subjects.STREAM_TWEETS].action == "updated"
    assert outcomes[subjects.STREAM_TWEETS].changes == ["replicas 1 → 3"]
    assert {o.replicas for o in outcomes.values()} == {3}

    def on_every_node() -> bool:
        states = [node.stream_state(subjects.STREAM_TWEETS) for node in cluster]
        return all(state is not None and state[0] == len(tweets) for state in states)

    await eventually(on_every_node, within=60, what="200 messages on each of the three nodes")
    again = await init_bus(three, wait_s=30)
    assert {o.action for o in again} == {"unchanged"}
