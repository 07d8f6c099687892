"""The refusals summaries in the store: the real store handler on chDB, and the real store
worker on a real nats-server: each summary stored once, an id with other counts refused, a bad
summary in the dead-letter queue with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats import connect as nats_connect
from nats.aio.msg import Msg

from services.store.handler import RefusalStore
from shared import subjects
from shared.messages import DeadLetter, RefusalCount, RequestsRefused
from shared.nats_server import NatsServerProcess
from shared.settings import Settings
from shared.storage import ChdbStore, PredictionRepository, Store, apply_migrations
from tests.integration.platform import started
from tests.servers import eventually

pytestmark = pytest.mark.integration


def refused_by(store: Store) -> dict[tuple[str, str, str], int]:
    """Refusals stored, per (limit, who, key name), each summary once."""
    rows = store.query(
        "SELECT rate_limit, who, key_name, sum(refused) AS n FROM refusals FINAL"
        " GROUP BY rate_limit, who, key_name"
    )
    return {(r["rate_limit"], r["who"], r["key_name"]): int(r["n"]) for r in rows}


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
