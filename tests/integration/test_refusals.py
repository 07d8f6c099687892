"""Requests refused for their rate (429) counted where Grafana reads them: the real gateway and
store on a real nats-server and chDB. Floods are counted as the clients saw them, and the
refusals table must hold exactly as many, each once, with key names and never an address; a bus
that goes away loses none of them; a bad summary goes to the dead-letter queue with the reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from nats import connect as nats_connect
from nats.aio.msg import Msg

from airparadis.wiring import Platform
from services.store.handler import RefusalStore
from shared import subjects
from shared.keys import KeyRing
from shared.messages import DeadLetter, RefusalCount, RequestsRefused
from shared.nats_server import NatsServerProcess
from shared.panels import run_query
from shared.settings import Settings
from shared.storage import ChdbStore, PredictionRepository, Store, apply_migrations
from tests.integration.platform import started
from tests.servers import eventually

pytestmark = pytest.mark.integration

FLUSH_S = 0.2
# Tokens come back slowly, so that a flood runs a bucket dry however slow this machine is.
SLOW_REFILL = {"rate_limit_per_s": 1.0}


def refused_by(store: Store) -> dict[tuple[str, str, str], int]:
    """Refusals stored, per (limit, who, key name), each summary once."""
    rows = store.query(
        "SELECT rate_limit, who, key_name, sum(refused) AS n FROM refusals FINAL"
        " GROUP BY rate_limit, who, key_name"
    )
    return {(r["rate_limit"], r["who"], r["key_name"]): int(r["n"]) for r in rows}


def client_at(platform: Platform, address: str) -> httpx.AsyncClient:
    """A client of the gateway in process, calling from `address`."""
    assert platform.gateway is not None
    transport = httpx.ASGITransport(app=platform.gateway, client=(address, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def who_refused(answer: httpx.Response) -> str:
    """ "key" or "address", from the 429's reason."""
    assert answer.status_code == 429, answer.text
    reason = answer.json()["reason"]
    return "key" if "this API key" in reason else "address"


def as_received(payload: RequestsRefused | bytes) -> Msg:
    """A message of gateway.refused as the store's consumer hands it over."""
    data = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
    return Msg(_client=None, subject=subjects.GATEWAY_REFUSED, data=data, headers={})  # type: ignore[arg-type]


def summary(number: int, *counts: RefusalCount) -> RequestsRefused:
    end = datetime.now(UTC)
    return RequestsRefused(
        id=f"gw-{number}",
        gateway="gw",
        window_start=end - timedelta(seconds=10),
        window_end=end,
        counts=list(counts),
    )


async def test_the_store_keeps_each_summary_once_and_refuses_an_id_with_other_counts(
    chdb_folder: Path, database_name: str
) -> None:
    store = ChdbStore(chdb_folder, database_name)
    try:
        apply_migrations(store, 30)
        handler = RefusalStore(PredictionRepository(store))
        by_address = RefusalCount(limit="api", who="address", count=5)
        by_key = RefusalCount(limit="feedback", who="key", key_name="crm", count=3)
        first, second = summary(0, by_address), summary(1, by_key, by_address)
        forged = summary(0, by_address.model_copy(update={"count": 50}))

        outcome = await handler(
            [as_received(m) for m in (first, first, second, b"{not json", forged)]
        )
        redelivered = await handler([as_received(first), as_received(second)])

        assert sorted(outcome.rejected) == [3, 4]
        assert outcome.rejected[3].startswith("malformed JSON")
        assert "already stored in refusals with other counts" in outcome.rejected[4]
        assert outcome.failed == {} and redelivered.rejected == {} and redelivered.failed == {}
        assert refused_by(store) == {("api", "address", ""): 10, ("feedback", "key", "crm"): 3}
        # Inserted once: the same without FINAL.
        assert store.query("SELECT sum(refused) AS n FROM refusals") == [{"n": 13}]
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database_name}")
        store.close()


@pytest.fixture
async def secured(platform_settings: Settings) -> AsyncIterator[Platform]:
    settings = platform_settings.model_copy(
        update={"auth": "on", "refusals_flush_s": FLUSH_S, **SLOW_REFILL}
    )
    async with started(settings) as running:
        yield running


async def test_a_flood_past_the_limits_is_stored_as_exactly_the_429s_the_clients_got(
    secured: Platform, nats: NatsServerProcess
) -> None:
    assert secured.store is not None
    keys = KeyRing(secured.store)
    crm = {"Authorization": f"Bearer {keys.create('crm', ['predict']).secret}"}
    monitor = {"Authorization": f"Bearer {keys.create('dashboard', ['monitor']).secret}"}
    got: Counter[str] = Counter()
    started_at = datetime.now(UTC)
    async with AsyncExitStack() as stack:
        # One key from three addresses, 14 calls each: its own bucket (burst 20) runs dry, the
        # addresses' do not. Then one address without a key: its bucket runs dry.
        offices = [
            await stack.enter_async_context(client_at(secured, f"10.0.0.{n}")) for n in (1, 2, 3)
        ]
        for _ in range(14):
            for office in offices:
                answer = await office.get("/v1/whoami", headers=crm)
                if answer.status_code != 200:
                    got[who_refused(answer)] += 1
        stranger = await stack.enter_async_context(client_at(secured, "10.0.0.9"))
        for _ in range(30):
            answer = await stranger.get("/v1/whoami")
            if answer.status_code != 401:
                got[who_refused(answer)] += 1
    assert got["key"] > 0 and got["address"] > 0, got
    expected = {("api", "key", "crm"): got["key"], ("api", "address", ""): got["address"]}

    await eventually(
        lambda: refused_by(secured.store) == expected,  # type: ignore[arg-type]
        within=30,
        what=f"the refusals stored: {expected}",
    )

    # Grafana's panel reads the same total.
    panel = run_query(
        secured.store,
        "refused_per_minute",
        started_at - timedelta(minutes=1),
        datetime.now(UTC) + timedelta(minutes=1),
        interval_s=60,
    )
    assert sum(row["refused_per_minute"] for row in panel) == got.total()
    # A few summaries, not a message per refusal; and no address anywhere.
    rows = secured.store.query("SELECT * FROM refusals")
    assert len({row["id"] for row in rows}) < got.total()
    assert "10.0.0." not in json.dumps(rows, default=str)
    nc = await nats_connect(nats.url)
    try:
        info = await nc.jetstream().stream_info(subjects.STREAM_GATEWAY)
        assert 1 <= info.state.messages < got.total()
    finally:
        await nc.close()
    # /monitor shows both: the gateway's own figure (since it started, in memory) and the
    # stored one (every gateway, in the window).
    async with client_at(secured, "10.0.0.20") as ops:
        limits = (await ops.get("/v1/limits", headers=monitor)).json()
        figures = (await ops.get("/v1/monitor?hours=1", headers=monitor)).json()
    assert limits["rate_limited"]["total"] == figures["rate_limited"]["total"] == got.total()
    assert figures["rate_limited_stored"] == {
        "total": got.total(),
        "api": got.total(),
        "feedback": 0,
    }


async def test_refusals_made_while_the_bus_is_away_are_stored_once_it_is_back(
    platform_settings: Settings, nats: NatsServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.gateway.refusals")
    settings = platform_settings.model_copy(update={"refusals_flush_s": FLUSH_S, **SLOW_REFILL})
    async with started(settings) as platform, client_at(platform, "10.0.0.7") as client:
        assert platform.store is not None
        nats.stop()
        await eventually(lambda: not platform.connection.connected, what="the lost connection")
        answers = [(await client.get("/v1/whoami")).status_code for _ in range(35)]
        refused = answers.count(429)
        assert refused > 0 and answers.count(200) + refused == 35

        def publish_failed() -> bool:
            return any(
                r.message == "refusals not published; kept for the next summary"
                and getattr(r, "published", None) == "not_stored"
                for r in caplog.records
            )

        await eventually(publish_failed, within=10, what="a summary the bus could not take")
        nats.start()
        await eventually(lambda: platform.connection.connected, within=30, what="reconnected")

        await eventually(
            lambda: refused_by(platform.store) == {("api", "address", ""): refused},  # type: ignore[arg-type]
            within=30,
            what=f"{refused} refusals stored",
        )
        ids = {row["id"] for row in platform.store.query("SELECT id FROM refusals")}
        assert len(ids) == 1  # the failed attempts carried on under one id


async def test_refusals_of_the_last_moments_are_published_at_stop(
    platform_settings: Settings,
) -> None:
    settings = platform_settings.model_copy(update={"refusals_flush_s": 3600.0, **SLOW_REFILL})
    async with started(settings) as platform, client_at(platform, "10.0.0.8") as client:
        answers = [(await client.get("/v1/whoami")).status_code for _ in range(30)]
        refused = answers.count(429)
        assert refused > 0
        assert platform.store is not None
        assert refused_by(platform.store) == {}  # nothing published yet: once an hour
    # The store stopped before the gateway published its last summary: it takes it at its next
    # start.
    async with started(settings) as again:
        await eventually(
            lambda: refused_by(again.store) == {("api", "address", ""): refused},  # type: ignore[arg-type]
            within=30,
            what="the last summary stored",
        )


async def test_a_bad_summary_goes_to_the_dead_letter_queue_with_the_reason(
    platform_settings: Settings, nats: NatsServerProcess
) -> None:
    letters: list[Msg] = []
    async with started(platform_settings):
        nc = await nats_connect(nats.url)
        try:
            await nc.subscribe(
                subjects.dead_letter_subject(subjects.GATEWAY_REFUSED), cb=_keep(letters)
            )
            await nc.jetstream().publish(subjects.GATEWAY_REFUSED, b'{"id": "gw-0", "counts": []}')
            await eventually(lambda: len(letters) == 1, what="a dead letter")
        finally:
            await nc.close()
    letter = DeadLetter.model_validate_json(letters[0].data)
    assert letter.worker == "store" and letter.subject == subjects.GATEWAY_REFUSED
    assert "invalid payload" in letter.reason and "counts" in letter.reason


def _keep(into: list[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def keep(msg: Msg) -> None:
        into.append(msg)

    return keep
