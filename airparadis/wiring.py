"""Builds what one process runs from settings: the bus connection, the workers (their batch
stages and control subscribers), the gateway and their resources. The one place where the
deployment mode (local nats-server and chDB, or servers) is decided; handlers never know.

The store: the process that runs the store worker opens it (chDB in the home folder, or a
ClickHouse server) and, with chDB, answers the others' reads on rpc.store.query, since only
one process may open a chDB folder. Any other process reads a ClickHouse server directly
when one is configured, else through the store worker (BusStore).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.alerter import handler as alerter
from services.alerter.checks import Checks
from services.alerter.state import AlerterState, KvAlerterState
from services.gateway.alerts import AlertWatcher
from services.gateway.app import create_app
from services.gateway.context import Gateway
from services.gateway.limits import RateLimiter
from services.gateway.refusals import RefusalReporter
from services.gateway.replies import ReplyWaiter
from services.infer import handler as infer
from services.preprocess.handler import PreprocessHandler
from services.store import handler as store
from services.store.ingress import purge_ingress_forever
from services.store.privacy import serve_privacy
from services.store.reads import serve_reads
from services.store.references import copy_champion_reference
from shared import subjects
from shared.bus import (
    ConnectionState,
    Streams,
    bind_streams,
    kv_stream,
    make_broker,
    nats_servers,
)
from shared.consumers import ConsumerWatch
from shared.jetstream import BatchStage, JetStreamPublisher, PullConsumer, hot_consumer_config
from shared.keys import KeyRing
from shared.language import LanguageDetector
from shared.messages import DataErased
from shared.nats_server import check_version, parse_version
from shared.registry import CHALLENGER, CHAMPION, Registry
from shared.scrub import TextPolicy
from shared.settings import Settings
from shared.storage import ChdbStore, PredictionRepository, Store, apply_migrations, open_store
from shared.store_reads import BusStore

log = logging.getLogger(__name__)

Worker = Literal["preprocess", "infer", "store", "alerter"]
WORKERS: tuple[Worker, ...] = ("preprocess", "infer", "store", "alerter")


def alerter_bucket(broker: NatsBroker) -> Callable[[], Awaitable[KeyValue]]:
    """Opens the alerter's KV bucket, which `airparadis bus init` created (never creates it)."""

    async def open_bucket() -> KeyValue:
        return await broker.key_value(subjects.KV_ALERTER, declare=False)

    return open_bucket


def model_loader(settings: Settings) -> infer.ModelLoader:
    """Loads a version of the configured model (None: the champion)."""
    return Registry.of(settings).load


def alias_version(settings: Settings, alias: str) -> Callable[[], str | None]:
    """Asks the registry which version holds `alias` (None: none does)."""
    registry = Registry.of(settings)

    def version() -> str | None:
        holder = registry.alias(alias)
        return holder.version if holder is not None else None

    return version


@dataclass
class Platform:
    """Everything one process runs: some workers, maybe the gateway, and their resources."""

    settings: Settings
    broker: NatsBroker
    streams: Streams
    workers: tuple[Worker, ...]
    with_gateway: bool
    connection: ConnectionState
    alerter_state: AlerterState | None = None
    store: Store | None = None
    repository: PredictionRepository | None = None
    holder: infer.ModelHolder = field(default_factory=infer.ModelHolder)
    challenger: infer.Challenger = field(default_factory=infer.Challenger)
    gateway: FastAPI | None = None
    checks: Checks | None = None
    consumers: ConsumerWatch | None = None
    refusals: RefusalReporter | None = None
    clock: alerter.Clock = alerter.utc_now
    stages: list[BatchStage] = field(default_factory=list)
    _reader: ChdbStore | None = None
    _reads: list[Subscription] = field(default_factory=list)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> None:
        """Connect, wait for the streams `bus init` made, load what the workers need, then consume.
        On failure everything opened so far is closed again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        log.info("connecting to NATS", extra={"servers": nats_servers(settings)})
        await self.broker.connect()
        self.connection.connected = True
        nc = self.broker.config.connection_state.connection
        # A server that can lose streams after a crash is refused, wherever it runs.
        where = nc.connected_url.netloc if nc.connected_url else "the NATS server"
        check_version(parse_version(str(nc.connected_server_version)), where)
        # The streams exist once `airparadis bus init` ran: wait for them, never create them.
        needed = [stream.name for stream in self.streams.all()]
        if isinstance(self.alerter_state, KvAlerterState):
            needed.append(kv_stream(subjects.KV_ALERTER))
        await bind_streams(self.broker.config.connection_state.stream, needed)
        self._open_store(nc)
        if isinstance(self.alerter_state, KvAlerterState):
            await self.alerter_state.bucket()
        if "infer" in self.workers and self.holder.current is None:
            self.holder.set(await asyncio.to_thread(model_loader(settings), None))
            model = self.holder.require()
            log.info("serving model", extra={"model": model.name, "version": model.version})
        publisher = JetStreamPublisher(nc)
        await publisher.start()
        self.stages = self._stages(nc, publisher)
        self.connection.listeners.append(self._after_reconnect)
        if self.with_gateway:
            await self._start_gateway(nc, publisher)
        await self.broker.start()
        for stage in self.stages:
            self._background(stage.run(), stage.name)
        if "store" in self.workers and isinstance(self.store, ChdbStore):
            self._reader = ChdbStore(self.store.path, self.store.database, read_only=True)
            self._reads = await serve_reads(nc, self._reader, self.store)
        if "store" in self.workers and self.store is not None:
            self._subscriptions += await serve_privacy(nc, self.store)
            if settings.text_storage != "full":
                self._background(purge_ingress_forever(nc, settings.ingress_purge_s), "purge")
        # Side tasks, after the consumers: none may hold up the start (MLflow slow to answer).
        if "store" in self.workers and self.store is not None:
            self._background(copy_champion_reference(self.store, settings), "champion-reference")
        if "infer" in self.workers:
            self._background(
                infer.follow_champion(
                    self.holder,
                    model_loader(settings),
                    alias_version(settings, CHAMPION),
                    settings.champion_poll_s,
                ),
                "follow-champion",
            )
            self._background(
                infer.follow_challenger(
                    self.challenger,
                    model_loader(settings),
                    alias_version(settings, CHALLENGER),
                    settings.champion_poll_s,
                ),
                "follow-challenger",
            )
        if self.checks is not None:
            self._background(self.checks.run_forever(), "checks")
        if self.consumers is not None:
            self._background(self.consumers.run_forever(), "consumer-watch")
        if self.refusals is not None:
            self._background(self.refusals.run_forever(), "refusals")
        # Every subscription is registered at the server before the process says it runs.
        await nc.flush(timeout=10)

    def _open_store(self, nc: Any) -> None:
        needs_store = "store" in self.workers or self.with_gateway or self._runs_checks
        if not needs_store:
            return
        if self.store is not None:  # given by the caller, ready to use
            pass
        elif "store" in self.workers or self.settings.clickhouse_url:
            self.store = open_store(self.settings)
            if "store" in self.workers:
                apply_migrations(
                    self.store, self.settings.retention_days, fsync=self.settings.clickhouse_fsync
                )
        else:
            self.store = BusStore(nc, asyncio.get_running_loop())
        self.repository = PredictionRepository(self.store, TextPolicy.of(self.settings))
        if self._runs_checks:
            assert self.alerter_state is not None
            self.checks = Checks(self.broker, self.settings, self.store, self.alerter_state)

    @property
    def _runs_checks(self) -> bool:
        return "alerter" in self.workers and self.settings.check_interval_s > 0

    def _stages(self, nc: Any, publisher: JetStreamPublisher) -> list[BatchStage]:
        """A batch stage for every durable consumer of the workers this process runs."""
        settings = self.settings
        max_bytes = settings.max_message_kb * 1024
        tweets, feedback, alerts = (
            subjects.STREAM_TWEETS,
            subjects.STREAM_FEEDBACK,
            subjects.STREAM_ALERTS,
        )
        # (worker, durable, subject, stream, handler, batch size, linger in s)
        table: list[tuple[str, str, str, str, Any, int, float]] = []
        if "preprocess" in self.workers:
            table.append(
                (
                    "preprocess",
                    subjects.DURABLE_PREPROCESS,
                    subjects.TWEETS_SUBMITTED,
                    tweets,
                    PreprocessHandler(
                        max_bytes, TextPolicy.of(settings), LanguageDetector.of(settings)
                    ),
                    max(settings.batch_max_size, 64),
                    0.0,
                )
            )
        if "infer" in self.workers:
            table.append(
                (
                    "infer",
                    subjects.DURABLE_INFER,
                    subjects.TWEETS_PREPROCESSED,
                    tweets,
                    infer.InferHandler(self.holder, max_bytes),
                    settings.batch_max_size,
                    settings.batch_max_wait_ms / 1000.0,
                )
            )
            table.append(
                (
                    "infer",
                    subjects.DURABLE_SHADOW,
                    subjects.TWEETS_PREPROCESSED,
                    tweets,
                    infer.ShadowHandler(self.challenger, self.holder, max_bytes),
                    max(settings.batch_max_size, 64),
                    0.05,  # nobody waits for a shadow score: fuller batches cost less
                )
            )
        if "store" in self.workers:
            assert self.repository is not None
            handlers = store.handlers(self.repository, settings)
            linger = settings.store_flush_ms / 1000.0
            size = settings.store_batch_size
            table += [
                (
                    "store",
                    subjects.DURABLE_STORE_PREDICTIONS,
                    subjects.TWEETS_SCORED,
                    tweets,
                    handlers[subjects.DURABLE_STORE_PREDICTIONS],
                    size,
                    linger,
                ),
                (
                    "store",
                    subjects.DURABLE_STORE_SHADOW,
                    subjects.TWEETS_SHADOW_SCORED,
                    tweets,
                    handlers[subjects.DURABLE_STORE_SHADOW],
                    size,
                    linger,
                ),
                (
                    "store",
                    subjects.DURABLE_STORE_FEEDBACK,
                    subjects.FEEDBACK_REPORTED,
                    feedback,
                    handlers[subjects.DURABLE_STORE_FEEDBACK],
                    size,
                    linger,
                ),
                (
                    "store",
                    subjects.DURABLE_STORE_ALERTS,
                    subjects.ALERTS_RAISED,
                    alerts,
                    handlers[subjects.DURABLE_STORE_ALERTS],
                    size,
                    linger,
                ),
                (
                    "store",
                    subjects.DURABLE_STORE_THRESHOLDS,
                    subjects.MODELS_THRESHOLD,
                    subjects.STREAM_MODELS,
                    handlers[subjects.DURABLE_STORE_THRESHOLDS],
                    size,
                    linger,
                ),
                (
                    "store",
                    subjects.DURABLE_STORE_REFUSALS,
                    subjects.GATEWAY_REFUSED,
                    subjects.STREAM_GATEWAY,
                    handlers[subjects.DURABLE_STORE_REFUSALS],
                    size,
                    linger,
                ),
                (
                    "store",
                    subjects.DURABLE_STORE_REFERENCES,
                    subjects.MODELS_PROMOTED,
                    subjects.STREAM_MODELS,
                    handlers[subjects.DURABLE_STORE_REFERENCES],
                    1,
                    0.0,
                ),
            ]
        if "alerter" in self.workers:
            assert self.alerter_state is not None
            # One at a time: reports are counted in the order they were reported.
            table += [
                (
                    "alerter",
                    subjects.DURABLE_ALERTER,
                    subjects.FEEDBACK_REPORTED,
                    feedback,
                    alerter.ReportCounter(self.alerter_state, settings, self.clock),
                    1,
                    0.0,
                ),
                (
                    "alerter",
                    subjects.DURABLE_MAILER,
                    subjects.ALERTS_RAISED,
                    alerts,
                    alerter.Mailer(self.alerter_state, settings),
                    1,
                    0.0,
                ),
            ]
        return [
            BatchStage(
                worker=worker,
                consumer=PullConsumer(
                    nc,
                    stream,
                    hot_consumer_config(durable, subject, settings, max(10_000, 4 * size)),
                    batch_size=size,
                ),
                publisher=publisher,
                handle=handle,
                settings=settings,
                linger_s=linger,
            )
            for worker, durable, subject, stream, handle, size, linger in table
        ]

    async def _start_gateway(self, nc: Any, publisher: JetStreamPublisher) -> None:
        assert self.repository is not None
        replies = ReplyWaiter()
        await replies.start(nc)
        alerts = AlertWatcher()
        alerts.register(self.broker, self.streams.alerts)
        self.consumers = ConsumerWatch(nc, self.settings.stall_after_s)
        limiter = RateLimiter.of(self.settings)
        self.refusals = RefusalReporter(
            limiter.unreported,
            self.broker,
            every_s=self.settings.refusals_flush_s,
            timeout_s=self.settings.publish_timeout_s,
        )
        context = Gateway(
            settings=self.settings,
            nc=nc,
            publisher=publisher,
            connection=self.connection,
            repository=self.repository,
            replies=replies,
            keys=KeyRing(self.repository.store),
            limiter=limiter,
            alerts=alerts,
            consumers=self.consumers,
        )
        self.gateway = create_app(context)

        async def on_erased(msg: Msg) -> None:
            try:
                erased = DataErased.model_validate_json(msg.data)
            except ValidationError:
                log.warning("unreadable privacy.erased event ignored")
                return
            dropped = context.recent.erase(erased.selector)
            log.info("erased predictions dropped from memory", extra={"n": dropped})

        self._subscriptions.append(await nc.subscribe(subjects.PRIVACY_ERASED, cb=on_erased))

    def _after_reconnect(self) -> None:
        for stage in self.stages:
            stage.consumer.reset()

    def _background(self, work: Awaitable[Any], name: str) -> None:
        async def supervised() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task failed", extra={"task": name})
                raise

        self._tasks.append(asyncio.create_task(supervised(), name=name))

    @property
    def failed_task(self) -> str | None:
        """The name of a background task that died (the process should not carry on)."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.get_name()
        return None

    async def stop(self) -> None:
        for stage in self.stages:
            stage.stop()
        stage_tasks = [t for t in self._tasks if any(t.get_name() == s.name for s in self.stages)]
        if stage_tasks:  # let each stage finish or hand back the batch in hand
            await asyncio.wait(stage_tasks, timeout=10.0)
        await cancel_all(self._tasks)
        self._tasks.clear()
        if self.refusals is not None:  # the last summary, while the bus is still here
            await self.refusals.stop()
        for subscription in [*self._reads, *self._subscriptions]:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._reads.clear()
        self._subscriptions.clear()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.store is not None:
            self.store.close()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], attempts: int = 10) -> None:
    """Cancel the tasks together, then wait until they end. Cancelled and awaited one after
    the other, a task could miss its cancellation and run on (the consumer watch did, in 4 of
    12 quick start-stops once the store's purge task was added; in Python 3.11 wait_for can
    swallow a cancellation that arrives as what it waits for completes, gh-86296): so a task
    still running a second after its cancellation is cancelled again."""
    pending = set(tasks)
    for _ in range(attempts):
        if not pending:
            return
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=1.0)
        for task in done:  # retrieved, so that asyncio does not report it unretrieved
            if not task.cancelled():
                task.exception()
    if pending:
        log.warning(
            "tasks still running after stop", extra={"tasks": [t.get_name() for t in pending]}
        )


def build_platform(
    settings: Settings,
    workers: Iterable[Worker] = WORKERS,
    *,
    with_gateway: bool = True,
    alerter_state: AlerterState | None = None,
    broker: NatsBroker | None = None,
) -> Platform:
    """Wire the chosen workers (and the gateway) on one connection; nothing is opened until
    `start()`."""
    chosen = tuple(workers)
    connection = ConnectionState()
    broker = broker or make_broker(settings, state=connection)
    streams = Streams(settings)
    platform = Platform(
        settings=settings,
        broker=broker,
        streams=streams,
        workers=chosen,
        with_gateway=with_gateway,
        connection=connection,
    )
    if "infer" in chosen:
        broker.include_router(
            infer.build_router(
                broker,
                settings,
                streams,
                platform.holder,
                model_loader(settings),
                platform.challenger,
            )
        )
    if "alerter" in chosen:
        platform.alerter_state = alerter_state or KvAlerterState(alerter_bucket(broker))
    return platform
