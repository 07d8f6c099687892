"""What an acknowledged publish survives: nats-server is killed with SIGKILL right after a burst
of acknowledged publishes, restarted on the same store, and every acknowledged message is
counted back — none lost, none doubled.

A process crash is what can be done here; a power cut or kernel crash (what `always` guards
against beyond this) cannot, and the README says what each setting promises there."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from shared.nats_server import (
    MIN_VERSION,
    NatsServerError,
    NatsServerProcess,
    check_version,
    parse_version,
)

pytestmark = pytest.mark.integration

BURST = 5000
IN_FLIGHT = 200


async def acknowledged_burst(url: str, total: int) -> set[str]:
    """Publish `total` messages, IN_FLIGHT at a time; the ids of those acknowledged."""
    nc = await nats.connect(url)
    acked: set[str] = set()
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="BURST", subjects=["burst.>"]))

        async def one(n: int) -> None:
            msg_id = f"m-{n}"
            await js.publish(f"burst.{n % 7}", msg_id.encode(), headers={"Nats-Msg-Id": msg_id})
            acked.add(msg_id)

        for start in range(0, total, IN_FLIGHT):
            await asyncio.gather(*(one(n) for n in range(start, min(start + IN_FLIGHT, total))))
    finally:
        # The connection is left for the kill to cut: no drain, no flush after the last ack.
        await nc.close()
    return acked


async def stored(url: str) -> list[str]:
    """Every message body in the stream, read back in order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("BURST")
        bodies = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            bodies.append((await js.get_msg("BURST", seq)).data.decode())  # type: ignore[union-attr]
        return bodies
    finally:
        await nc.close()


@pytest.mark.parametrize("sync_interval", ["always", "2m"])
async def test_every_acknowledged_publish_survives_a_kill_9_of_nats_server(
    tmp_path: Path, sync_interval: str
) -> None:
    server = NatsServerProcess(tmp_path / "nats", sync_interval=sync_interval)
    server.start()
    try:
        acked = await acknowledged_burst(server.url, BURST)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)  # right after the last acknowledgement
        server.process.wait(timeout=10)
    finally:
        server.stop()

    restarted = NatsServerProcess(tmp_path / "nats", port=server.port, sync_interval=sync_interval)
    with restarted:
        bodies = await stored(restarted.url)

    assert len(acked) == BURST
    assert set(bodies) >= acked, f"{len(acked - set(bodies))} acknowledged messages lost"
    assert len(bodies) == len(set(bodies)), "a message was stored twice"


def test_the_embedded_server_runs_with_the_sync_interval_asked(tmp_path: Path) -> None:
    with NatsServerProcess(tmp_path / "nats", sync_interval="always") as server:
        config = (server.store_dir / "airparadis-durability.conf").read_text(encoding="utf-8")
    assert "sync_interval: always" in config
    with pytest.raises(NatsServerError, match="expected `always` or a duration"):
        NatsServerProcess(tmp_path / "other", sync_interval="sometimes")


@pytest.mark.parametrize(
    ("text", "version"),
    [("nats-server: v2.15.1", (2, 15, 1)), ("2.10.23", (2, 10, 23)), ("v2.12.0-RC.1", (2, 12, 0))],
)
def test_versions_are_read_from_the_binary_and_the_server_info(
    text: str, version: tuple[int, int, int]
) -> None:
    assert parse_version(text) == version
    check_version(version, "here")  # all at or above the minimum


def test_a_server_that_can_lose_streams_on_a_crash_is_refused_with_the_reason() -> None:
    assert MIN_VERSION == (2, 10, 23)
    with pytest.raises(NatsServerError, match=r"2\.10\.22; 2\.10\.23 or later is needed.*#6888"):
        check_version((2, 10, 22), "nats://old:4222")
