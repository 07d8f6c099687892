"""`airparadis bus init` against a real nats-server, and workers that only bind to what it made:
a worker started before it waits (saying for what) and creates nothing; the command prints what
it did and says why it cannot do more."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import nats
import pytest
from typer.testing import CliRunner

from airparadis.cli import app
from shared import subjects
from shared.messages import TweetSubmitted
from shared.nats_server import free_port
from shared.settings import Settings
from tests.integration.platform import StartPlatform
from tests.servers import eventually, nats_server

pytestmark = pytest.mark.integration


async def stream_names(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        return sorted(info.config.name or "" for info in await nc.jetstream().streams_info())
    finally:
        await nc.close()


async def test_a_worker_waits_for_its_streams_and_never_makes_them(
    tmp_path: Path,
    platform_settings: Settings,
    start_platform: StartPlatform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with nats_server(tmp_path / "bare", streams=False) as bare:
        settings = platform_settings.model_copy(update={"nats_url": bare.url})
        caplog.set_level(logging.WARNING, logger="shared.bus")

        async def run_preprocess() -> int:
            async with start_platform(("preprocess",), settings=settings) as platform:
                nc = await nats.connect(bare.url)
                try:
                    tweet = TweetSubmitted(text="Landed early, great crew!", source="bind")
                    reply = await nc.request(
                        subjects.TWEETS_SUBMITTED, tweet.model_dump_json().encode(), timeout=5
                    )
                    assert b'"stream":"TWEETS"' in reply.data.replace(b" ", b"")
                    js = nc.jetstream()

                    async def preprocessed() -> bool:
                        info = await js.stream_info(subjects.STREAM_TWEETS)
                        return info.state.messages >= 2

                    await eventually(preprocessed, within=20, what="the tweet preprocessed")
                finally:
                    await nc.close()
                return len(platform.stages)

        starting = asyncio.ensure_future(run_preprocess())
        await eventually(
            lambda: "waiting for streams" in caplog.text, within=20, what="a waiting log line"
        )
        [waiting, *_] = [r for r in caplog.records if r.getMessage() == "waiting for streams"]
        assert f"{subjects.STREAM_TWEETS} does not exist: run `airparadis bus init`" in (
            waiting.streams  # type: ignore[attr-defined]
        )
        await asyncio.sleep(1.0)
        assert not starting.done()
        assert await stream_names(bare.url) == []  # the worker made none

        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["bus", "init"], env={"AIRPARADIS_NATS_URL": bare.url}
        )
        assert result.exit_code == 0, result.output
        assert "created" in result.output and "TWEETS" in result.output
        assert await asyncio.wait_for(starting, timeout=30) >= 1
        assert await stream_names(bare.url) == sorted(
            [*subjects.STREAMS, f"KV_{subjects.KV_ALERTER}"]
        )


def test_bus_init_says_why_three_replicas_cannot_live_on_one_server(tmp_path: Path) -> None:
    with nats_server(tmp_path / "one", streams=False) as one:
        result = CliRunner().invoke(
            app,
            ["bus", "init", "--replicas", "3", "--wait", "2"],
            env={"AIRPARADIS_NATS_URL": one.url},
        )
        assert result.exit_code == 1
        text = " ".join(result.output.split())
        assert "bus init failed" in text
        assert "3 replicas need a JetStream cluster of at least 3 servers" in text
        assert asyncio.run(stream_names(one.url)) == []  # nothing half made

        again = CliRunner().invoke(app, ["bus", "init"], env={"AIRPARADIS_NATS_URL": one.url})
        assert again.exit_code == 0, again.output
        unchanged = CliRunner().invoke(app, ["bus", "init"], env={"AIRPARADIS_NATS_URL": one.url})
        assert unchanged.output.count("unchanged") == len(subjects.STREAMS) + 1


def test_bus_init_gives_up_on_an_unreachable_bus_after_its_wait(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["bus", "init", "--wait", "3"], env={"AIRPARADIS_NATS_URL": f"nats://127.0.0.1:{port}"}
    )
    assert result.exit_code == 1
    assert "bus init failed" in result.output and "NoServersError" in result.output
    assert time.monotonic() - started < 30
