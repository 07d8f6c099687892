"""The behaviour every storage backend must show, written once and run against each.

A test module subclasses `StoreContract` and provides `make_store`: a callable that opens a new
connection to one fresh database (calling it again simulates a restart of the platform).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.messages import (
    AlertRaised,
    FeedbackReported,
    PredictionSnapshot,
    TweetScored,
)
from shared.preprocessing import text_features
from shared.scrub import TextPolicy
from shared.storage import (
    MIGRATIONS_DIR,
    PredictionRepository,
    Store,
    apply_migrations,
    load_migrations,
    prediction_row,
)

# Every migration in infra/clickhouse/, in the order the runner applies them.
ALL_MIGRATIONS = [
    m.version
    for m in load_migrations(MIGRATIONS_DIR, {"database": "d", "retention_days": "1", "fsync": "1"})
]

RETENTION_DAYS = 365
MALICIOUS = "'; DROP TABLE predictions; --"
# The contract is the store's: text comes back as given (what the platform gives it is the
# text_storage setting's business, tests/integration/test_privacy.py).
AS_WRITTEN = TextPolicy("full")
# What escaped text formats and placeholders treat specially: must come back as written.
AWKWARD = 'back\\slash, tab\tand\nnewline, `tick` "quote" {id:String} trailing\\'


def _to_millisecond(moment: datetime) -> datetime:
    # ClickHouse keeps DateTime64(3): compare with what it can hold.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def scored_tweet(
    number: int, *, text: str | None = None, at: datetime | None = None
) -> TweetScored:
    scored_at = _to_millisecond(at or datetime.now(UTC))
    text = text or f"Flight {number} was great, thanks @AirParadis #happy"
    return TweetScored(
        id=f"prediction-{number}",
        text=text,
        features=text_features(text),
        source="api",
        label="positive",
        probability=0.93,
        threshold=0.71,
        model_name="airparadis-sentiment",
        model_version="3",
        submitted_at=scored_at - timedelta(milliseconds=12),
        scored_at=scored_at,
        latency_ms=12.5,
        batch_size=8,
    )


def snapshot_of(event: TweetScored) -> PredictionSnapshot:
    return PredictionSnapshot(
        text=event.text,
        label=event.label,
        probability=event.probability,
        threshold=event.threshold,
        model_name=event.model_name,
        model_version=event.model_version,
        scored_at=event.scored_at,
        latency_ms=event.latency_ms,
    )


def wrong_prediction_report(event: TweetScored, number: int = 1) -> FeedbackReported:
    return FeedbackReported(
        id=f"report-{number}",
        prediction_id=event.id,
        correct_label="negative",
        comment=None,
        reported_at=_to_millisecond(datetime.now(UTC)),
        prediction=snapshot_of(event),
    )


def wrong_predictions_alert() -> AlertRaised:
    return AlertRaised(
        id="alert-1",
        kind="wrong_predictions",
        raised_at=_to_millisecond(datetime.now(UTC)),
        summary="3 wrong predictions in 5 minutes",
        details={"reports": 3, "tweet": "Flight 1 was great…", "probability": 0.93},
    )


class StoreContract:
    """Run by each backend's test module; the subclass provides `make_store`, and `cluster`
    when its server is a replica of a ClickHouse cluster (migrations run ON CLUSTER)."""

    cluster: str | None = None

    def migrate(self, store: Store, retention_days: int, *, fsync: bool = True) -> list[str]:
        return apply_migrations(store, retention_days, fsync=fsync, cluster=self.cluster)

    @pytest.fixture
    def make_store(self) -> Callable[[], Store]:
        raise NotImplementedError("the backend's test class provides make_store")

    @pytest.fixture
    def connect(self, make_store: Callable[[], Store]) -> Iterator[Callable[[], Store]]:
        """Opens stores on the test's database; closes them and drops the database after."""
        opened: list[Store] = []

        def open_one() -> Store:
            store = make_store()
            opened.append(store)
            return store

        yield open_one
        for store in opened:
            store.close()
        cleanup = make_store()
        try:
            database = cleanup.query("SELECT currentDatabase() AS db")[0]["db"]
            on_cluster = f" ON CLUSTER {self.cluster} SYNC" if self.cluster else ""
            cleanup.command(f"DROP DATABASE IF EXISTS {database}{on_cluster}")
        finally:
            cleanup.close()

    @pytest.fixture
    def store(self, connect: Callable[[], Store]) -> Store:
        store = connect()
        self.migrate(store, RETENTION_DAYS)
        return store

    @pytest.fixture
    def repository(self, store: Store) -> PredictionRepository:
        return PredictionRepository(store, AS_WRITTEN)

    def test_migrations_apply_once_and_reapplying_them_at_a_restart_changes_nothing(
        self, connect: Callable[[], Store]
    ) -> None:
        first = connect()
        assert self.migrate(first, RETENTION_DAYS) == ALL_MIGRATIONS
        tables = first.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
        assert {"predictions", "feedback", "alerts", "schema_migrations"} <= {
            t["name"] for t in tables
        }

        restarted = connect()
        assert self.migrate(restarted, RETENTION_DAYS) == []
        ledger = restarted.query("SELECT version FROM schema_migrations FINAL ORDER BY version")
        assert [row["version"] for row in ledger] == ALL_MIGRATIONS

    async def test_saved_predictions_feedback_and_alerts_read_back(
        self, repository: PredictionRepository, store: Store
    ) -> None:
        tweets = [scored_tweet(number) for number in range(3)]
        report = wrong_prediction_report(tweets[0])
        alert = wrong_predictions_alert()

        await repository.save_predictions(tweets)
        await repository.save_feedback([report])
        await repository.save_alerts([alert])

        assert await repository.count("predictions") == 3
        assert await repository.count("feedback") == 1
        assert await repository.count("alerts") == 1
        assert await repository.get_prediction(tweets[1].id) == snapshot_of(tweets[1])
        [feedback] = store.query("SELECT * FROM feedback FINAL")
        assert feedback["prediction_id"] == tweets[0].id
        assert feedback["correct_label"] == "negative"
        assert feedback["comment"] == ""
        assert feedback["reported_at"] == report.reported_at
        assert feedback["probability"] == tweets[0].probability
        [stored_alert] = store.query("SELECT kind, summary, details FROM alerts FINAL")
        assert stored_alert["kind"] == "wrong_predictions"
        assert json.loads(stored_alert["details"]) == alert.details

    async def test_redelivered_events_are_stored_once(
        self, repository: PredictionRepository
    ) -> None:
        tweets = [scored_tweet(number) for number in range(5)]
        report = wrong_prediction_report(tweets[0])

        for _delivery in range(2):
            await repository.save_predictions(tweets)
            await repository.save_feedback([report])
            await repository.save_alerts([wrong_predictions_alert()])

        assert await repository.count("predictions") == 5
        assert await repository.count("feedback") == 1
        assert await repository.count("alerts") == 1
        assert await repository.get_prediction(tweets[0].id) == snapshot_of(tweets[0])

    async def test_unknown_prediction_is_none(self, repository: PredictionRepository) -> None:
        await repository.save_predictions([scored_tweet(1)])

        assert await repository.get_prediction("no-such-prediction") is None

    def test_inserts_fsync_by_default_and_the_setting_turns_it_off_at_the_next_start(
        self, store: Store, connect: Callable[[], Store]
    ) -> None:
        tables = ("predictions", "feedback", "alerts", "thresholds", "refusals")
        for table in tables:
            [create] = store.query(f"SHOW CREATE TABLE {table}")
            assert "fsync_after_insert = 1" in create["statement"], create["statement"]
            assert "fsync_part_directory = 1" in create["statement"]
        restarted = connect()

        assert self.migrate(restarted, RETENTION_DAYS, fsync=False) == ["R__durability"]
        for table in tables:
            [create] = restarted.query(f"SHOW CREATE TABLE {table}")
            assert "fsync_after_insert = 0" in create["statement"], create["statement"]

    def test_a_new_retention_setting_moves_the_ttl_at_the_next_start(
        self, store: Store, connect: Callable[[], Store], caplog: pytest.LogCaptureFixture
    ) -> None:
        restarted = connect()

        assert self.migrate(restarted, 30) == ["R__retention_ttl"]
        for table in ("predictions", "feedback", "alerts", "thresholds", "refusals"):
            [create] = restarted.query(f"SHOW CREATE TABLE {table}")
            assert "toIntervalDay(30)" in create["statement"], create["statement"]
        assert self.migrate(connect(), 30) == []
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]

    @pytest.mark.parametrize("text", [MALICIOUS, AWKWARD], ids=["injection", "escapes"])
    async def test_a_hostile_string_is_only_data(
        self, repository: PredictionRepository, store: Store, text: str
    ) -> None:
        # Stored as a tweet, then used as a query parameter: neither runs nor alters it.
        hostile = scored_tweet(1, text=text)
        await repository.save_predictions([hostile])

        found = store.query(
            "SELECT id, text FROM predictions FINAL WHERE text = {text:String}", {"text": text}
        )
        assert found == [{"id": hostile.id, "text": text}]
        assert store.query("SELECT id FROM predictions WHERE id = {id:String}", {"id": text}) == []
        assert await repository.get_prediction(text) is None
        assert await repository.count("predictions") == 1

    @pytest.mark.parametrize("text", [MALICIOUS, AWKWARD], ids=["injection", "escapes"])
    def test_a_list_of_hostile_strings_is_only_data(self, store: Store, text: str) -> None:
        values = [text, "plain", "it's", "back\\slash", "tab\there"]
        [row] = store.query("SELECT {values:Array(String)} AS v", {"values": values})
        assert row["v"] == values

    async def test_new_stored_and_conflicting_ids_are_told_apart(
        self, repository: PredictionRepository
    ) -> None:
        stored, fresh = scored_tweet(1), scored_tweet(2)
        await repository.save_predictions([stored])
        hijack = stored.model_copy(update={"text": "someone else's words"})
        rows = [prediction_row(t, AS_WRITTEN) for t in (stored, fresh, hijack, fresh)]

        sorted_rows = await repository.sort_new("predictions", rows)

        assert sorted_rows.new == [1]
        assert sorted_rows.already_stored == [0, 3]  # a redelivery; the same id twice in a batch
        assert list(sorted_rows.conflicts) == [2]
        assert "other content" in sorted_rows.conflicts[2]

    async def test_concurrent_saves_from_several_threads_keep_every_row(
        self, repository: PredictionRepository, store: Store
    ) -> None:
        batches = [[scored_tweet(batch * 100 + i) for i in range(100)] for batch in range(16)]

        await asyncio.gather(*(repository.save_predictions(batch) for batch in batches))

        [stats] = store.query("SELECT count() AS n, uniqExact(id) AS ids FROM predictions FINAL")
        assert stats == {"n": 1600, "ids": 1600}

    async def test_ping_answers_while_the_store_is_open(self, connect: Callable[[], Store]) -> None:
        store = connect()
        repository = PredictionRepository(store, AS_WRITTEN)
        assert await repository.ping() is True

        store.close()
        assert await repository.ping() is False
