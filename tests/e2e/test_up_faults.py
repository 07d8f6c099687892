"""Faults against `airparadis up` as it runs for real: one process per worker, nats-server,
chDB. Each test is bounded in time and count, talks to 127.0.0.1 only, and counts what went in
and what came out: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from shared import subjects
from shared.nats_server import NatsServerProcess, free_port
from tests.e2e.launch import (
    Running,
    crash,
    launched,
    publish,
    query,
    scored_on_the_stream,
    stored,
    tweets,
    wait_until,
)
from tests.servers import smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.fault]


@pytest.fixture
def fault_env(registry: str) -> dict[str, str]:
    """A trained registry (no training at start) and short timings, so faults heal quickly."""
    return {
        "AIRPARADIS_MLFLOW_TRACKING_URI": registry,
        "AIRPARADIS_ACK_WAIT_S": "5",
        "AIRPARADIS_NATS_RECONNECT_WAIT_S": "0.2",
        "AIRPARADIS_CHECK_INTERVAL_S": "0",
        "AIRPARADIS_STALL_AFTER_S": "20",
        # One infer process throughout: the faults are aimed at the one there is
        # (test_up_scaling tests processes coming and going).
        "AIRPARADIS_SCALE_INFER_MAX": "1",
    }


def rows_of(running: Running, source: str) -> int:
    return stored(running, source)["rows"]


def test_kill_9_of_the_whole_platform_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, fault_env: dict[str, str]
) -> None:
    total, source = 10_000, "crash"
    # Small batches: slow enough to be caught mid-stream.
    env = fault_env | {"AIRPARADIS_BATCH_MAX_SIZE": "8", "AIRPARADIS_STORE_BATCH_SIZE": "50"}
    nats_port, http_port = free_port(), free_port()
    with launched(tmp_path, env=env, nats_port=nats_port, http_port=http_port) as first:
        asyncio.run(publish(first.nats_url, tweets(total, source)))
        wait_until(lambda: rows_of(first, source) > 500, 60, "the first rows")
        crash(first)
    with launched(
        tmp_path, env=env, nats_port=nats_port, http_port=http_port, log_name="up-2.log"
    ) as second:
        wait_until(lambda: rows_of(second, source) >= total, 180, f"{total} rows")
        time.sleep(2)  # anything doubled would show now
        assert stored(second, source) == {"rows": total, "ids": total}
        assert scored_on_the_stream(second.nats_url) == total


@pytest.mark.parametrize(
    "attempts",
    [-1, 3],
    ids=["reconnects-forever", "gives-up-and-is-restarted"],
)
def test_bus_down_longer_than_the_reconnect_budget_then_back(
    tmp_path: Path, fault_env: dict[str, str], attempts: int
) -> None:
    """NATS away 15 s, longer than 60 reconnect attempts 0.2 s apart: no process hangs, HTTP
    says 503 and stores nothing, SIGTERM still stops a worker, and once NATS is back the
    pipeline drains by itself: every tweet accepted before is stored once."""
    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    env = fault_env | {
        "AIRPARADIS_NATS_URL": server.url,
        "AIRPARADIS_NATS_MAX_RECONNECT_ATTEMPTS": str(attempts),
    }
    total, source = 3000, "before-outage"
    try:
        with launched(tmp_path, env=env) as running:
            http = httpx.Client(base_url=running.base_url, timeout=10)
            asyncio.run(publish(server.url, tweets(total, source)))
            assert server.process is not None
            server.process.kill()
            server.process.wait()
            if attempts < 0:
                assert outage(http, running, seconds=15.0) >= 5
            else:  # each process gives up, exits and is restarted, until NATS is back
                time.sleep(15.0)
                assert "gave up on NATS" in running.log_tail(500_000)
            server.start()
            wait_until(lambda: rows_of(running, source) >= total, 120, f"{total} rows")
            wait_until(
                lambda: http.post("/v1/predict", json={"text": "back?"}).status_code == 200,
                60,
                "HTTP answers again",
            )
            assert stored(running, source) == {"rows": total, "ids": total}
            during = asyncio.run(
                query(server.url, "SELECT count() AS n FROM predictions WHERE text LIKE 'outage %'")
            )
            assert during == [{"n": 0}]  # what HTTP refused was never stored
    finally:
        server.stop()


def outage(http: httpx.Client, running: Running, seconds: float) -> int:
    """While NATS is away: every predict is refused at once with 503, /healthz stays up,
    /readyz says why, and a worker told to stop stops. The count of refusals."""
    deadline = time.monotonic() + seconds
    refused = 0
    stopped_worker = False
    while time.monotonic() < deadline:
        started = time.monotonic()
        answer = http.post("/v1/predict", json={"text": f"outage {refused}"})
        if answer.status_code == 503:
            assert time.monotonic() - started < 3, "a refusal must not wait for the bus"
            assert answer.json()["error"] == "bus_unavailable"
            assert int(answer.headers["retry-after"]) > 0
            refused += 1
        else:  # only in the first instants, before the gateway saw the connection drop
            assert answer.status_code in (503, 504), answer.text
        health = http.get("/healthz")
        assert health.status_code in (200, 503)  # answered: the loop is alive
        if not stopped_worker and refused > 3:
            stopped_worker = sigterm_stops(running, "preprocess")
        time.sleep(0.5)
    ready = http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["nats"]["ok"] is False
    assert stopped_worker
    return refused


def sigterm_stops(running: Running, role: str) -> bool:
    pid = running.pid_of(role)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "Z" in state_of(pid):
            return True
        time.sleep(0.1)
    raise AssertionError(f"{role} did not stop on SIGTERM within 10 s while NATS was away")


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_killed_nats_server_is_restarted_by_up(tmp_path: Path, fault_env: dict[str, str]) -> None:
    with launched(tmp_path, env=fault_env) as running:
        old = running.pid_of("nats-server")
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: running.pids().get("nats-server", [old]) != [old], 15, "a new one")
        http = httpx.Client(base_url=running.base_url, timeout=10)
        wait_until(
            lambda: http.post("/v1/predict", json={"text": "still there?"}).status_code == 200,
            60,
            "HTTP answers again",
        )


@pytest.mark.parametrize("victim", ["infer", "store"])
def test_20000_tweets_with_a_worker_killed_mid_way_are_stored_once_each(
    tmp_path: Path, fault_env: dict[str, str], victim: str
) -> None:
    total, source = 20_000, f"kill-{victim}"
    with launched(tmp_path, env=fault_env) as running:
        old = running.pid_of(victim)
        asyncio.run(publish(running.nats_url, tweets(total, source)))
        wait_until(lambda: rows_of(running, source) > 1000, 60, "the first rows")
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: running.pids().get(victim, [old]) != [old], 15, f"a new {victim}")
        wait_until(lambda: rows_of(running, source) >= total, 180, f"{total} rows")
        time.sleep(2)
        assert stored(running, source) == {"rows": total, "ids": total}
        assert scored_on_the_stream(running.nats_url) == total
        assert "process exited; restarting it" in running.log_tail(200_000)


def test_smtp_down_across_an_alert_and_a_restart_sends_one_email(
    tmp_path: Path, fault_env: dict[str, str]
) -> None:
    port = free_port()  # nothing listens there yet
    env = fault_env | {"AIRPARADIS_SMTP_HOST": "127.0.0.1", "AIRPARADIS_SMTP_PORT": str(port)}
    with launched(tmp_path, env=env) as running:
        http = httpx.Client(base_url=running.base_url, timeout=15)
        for text in ("Nice crew", "Good food", "Clean cabin"):
            prediction = http.post("/v1/predict", json={"text": text}).json()
            reported = http.post("/v1/feedback", json={"prediction_id": prediction["id"]})
            assert reported.status_code == 202

        def alert_stored() -> bool:
            rows = asyncio.run(query(running.nats_url, "SELECT count() AS n FROM alerts"))
            return rows == [{"n": 1}]

        wait_until(alert_stored, 60, "the stored alert")
        old = running.pid_of("alerter")
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: running.pids().get("alerter", [old]) != [old], 15, "a new alerter")
        with smtp_server(port) as (_, inbox):
            wait_until(lambda: len(inbox.messages) >= 1, 60, "the email")
            time.sleep(3)
            assert len(inbox.messages) == 1


@pytest.fixture
def bus(tmp_path: Path, fault_env: dict[str, str]) -> Iterator[Running]:
    with launched(tmp_path, env=fault_env) as running:
        yield running


def test_a_flood_of_bad_messages_neither_stalls_the_pipeline_nor_fills_the_disk(
    bus: Running,
) -> None:
    refused, accepted = asyncio.run(flood(bus.nats_url))
    assert refused == 1000  # 250 KB each: over the stream's limit, refused at publish
    assert accepted == 1000  # under the limit but undecodable: dead-lettered
    source = "after-flood"
    started = time.monotonic()
    asyncio.run(publish(bus.nats_url, tweets(200, source)))
    wait_until(lambda: rows_of(bus, source) >= 200, 60, "the good tweets")
    assert time.monotonic() - started < 30
    letters, size = asyncio.run(dead_letters(bus.nats_url))
    assert letters == 1000
    assert size < 1000 * 16 * 1024  # each dead letter is cut to its first 8 KB
    wait_until(
        lambda: httpx.get(bus.base_url + "/readyz", timeout=5).status_code == 200,
        30,
        "ready, no consumer stalled",
    )


async def flood(url: str) -> tuple[int, int]:
    """1000 messages of 250 KB (invalid UTF-8), then 1000 bad ones under the size limit:
    invalid UTF-8 of 60 KB, JSON nested 5000 deep, malformed JSON under 200 headers."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    refused = accepted = 0
    huge = b"\xff\xfe" * 125_000
    for i in range(1000):
        # One at a time: nats-py's publish_async never settles a publish JetStream refuses.
        try:
            await js.publish(subjects.TWEETS_SUBMITTED, huge, headers={"n": str(i)})
        except nats.js.errors.APIError as error:
            refused += "maximum" in str(error)
    many_headers = {f"X-Junk-{i}": "v" * 100 for i in range(200)}
    bad = [
        (b"\xff" * 60_000, None),
        (b"[" * 5000 + b"]" * 5000, None),
        (b'{"text": "unterminated', many_headers),
        (b'{"text": "\\u200b"}', None),
    ]
    for start in range(0, 1000, 100):
        acks = [
            await js.publish_async(subjects.TWEETS_SUBMITTED, bad[i % 4][0], headers=bad[i % 4][1])
            for i in range(start, start + 100)
        ]
        accepted += sum(not isinstance(r, Exception) for r in await asyncio.gather(*acks))
    await nc.close()
    return refused, accepted


async def dead_letters(url: str) -> tuple[int, int]:
    nc = await nats.connect(url)
    try:
        deadline = time.monotonic() + 60
        while True:
            info = await nc.jetstream().stream_info(subjects.STREAM_DLQ)
            if info.state.messages >= 1000 or time.monotonic() > deadline:
                return int(info.state.messages), int(info.state.bytes)
            await asyncio.sleep(0.5)
    finally:
        await nc.close()
