"""Builds the broker, the workers and the gateway from settings: the one place where the
deployment mode (local nats-server and chDB, or servers) is decided. Handlers never know."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.js.api import StorageType
from nats.js.kv import KeyValue

from services.alerter import handler as alerter
from services.alerter.checks import Checks
from services.alerter.state import AlerterState, KvAlerterState
from services.gateway.alerts import AlertWatcher
from services.gateway.app import create_app
from services.gateway.replies import ReplyWaiter
from services.infer import handler as infer
from services.preprocess import handler as preprocess
from services.store import handler as store
from services.store.references import copy_champion_reference
from shared import subjects
from shared.bus import Streams, declare_streams, make_broker
from shared.models import LoadedModel, load_champion, load_version
from shared.settings import Settings
from shared.storage import PredictionRepository, Store, apply_migrations, open_store

log = logging.getLogger(__name__)

Worker = Literal["preprocess", "infer", "store", "alerter"]
WORKERS: tuple[Worker, ...] = ("preprocess", "infer", "store", "alerter")


def alerter_bucket(broker: NatsBroker, settings: Settings) -> Callable[[], Awaitable[KeyValue]]:
    """Opens (creating if needed) the alerter's KV bucket; its TTL outlives window and cooldowns."""
    ttl = float(
        max(
            7 * 86_400,
            settings.alert_window_s * 2,
            settings.alert_cooldown_s * 2,
            settings.check_cooldown_s * 2,
        )
    )

    async def open_bucket() -> KeyValue:
        return await broker.key_value(subjects.KV_ALERTER, ttl=ttl, storage=StorageType.FILE)

    return open_bucket


def model_loader(settings: Settings) -> infer.ModelLoader:
    def load(version: str | None) -> LoadedModel:
        if version is None:
            return load_champion(settings.tracking_uri, settings.model_name)
        return load_version(settings.tracking_uri, settings.model_name, version)

    return load


@dataclass
class Platform:
    """Everything one process runs: some workers, maybe the gateway, and their resources."""

    settings: Settings
    broker: NatsBroker
    streams: Streams
    workers: tuple[Worker, ...]
    store: Store | None = None
    repository: PredictionRepository | None = None
    holder: infer.ModelHolder = field(default_factory=infer.ModelHolder)
    alerter_state: KvAlerterState | None = None
    gateway: FastAPI | None = None
    checks: Checks | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Connect, declare streams, load what the workers need, then start consuming.
        On failure everything opened so far is closed again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await self.broker.connect()
        await declare_streams(self.broker, self.streams)
        if self.alerter_state is not None:
            await self.alerter_state.bucket()
        if "infer" in self.workers and self.holder.current is None:
            self.holder.set(model_loader(self.settings)(None))
            model = self.holder.require()
            log.info("serving model", extra={"model": model.name, "version": model.version})
        await self.broker.start()
        # Side tasks, after the consumers: neither may hold up the start (MLflow slow to answer).
        if "store" in self.workers and self.store is not None:
            self._tasks.append(
                asyncio.create_task(
                    copy_champion_reference(self.store, self.settings), name="champion-reference"
                )
            )
        if self.checks is not None:
            self._tasks.append(
                asyncio.create_task(self.checks.run_forever(), name="drift-and-error-rate-checks")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.broker.stop()
        if self.store is not None:
            self.store.close()


def build_platform(
    settings: Settings,
    workers: Iterable[Worker] = WORKERS,
    *,
    with_gateway: bool = True,
    alerter_state: AlerterState | None = None,
    broker: NatsBroker | None = None,
) -> Platform:
    """Wire the chosen workers (and the gateway) on one broker."""
    chosen = tuple(workers)
    broker = broker or make_broker(settings)
    streams = Streams(settings)
    platform = Platform(settings=settings, broker=broker, streams=streams, workers=chosen)

    checks = "alerter" in chosen and settings.check_interval_s > 0
    if "store" in chosen or with_gateway or checks:
        platform.store = open_store(settings)
        apply_migrations(platform.store, settings.retention_days)
        platform.repository = PredictionRepository(platform.store)

    if "preprocess" in chosen:
        broker.include_router(preprocess.build_router(broker, settings, streams))
    if "infer" in chosen:
        broker.include_router(
            infer.build_router(broker, settings, streams, platform.holder, model_loader(settings))
        )
    if "store" in chosen:
        assert platform.repository is not None
        broker.include_router(store.build_router(broker, settings, streams, platform.repository))
    if "alerter" in chosen:
        if alerter_state is None:
            platform.alerter_state = KvAlerterState(alerter_bucket(broker, settings))
            alerter_state = platform.alerter_state
        broker.include_router(alerter.build_router(broker, settings, streams, alerter_state))
        if checks:
            assert platform.store is not None
            platform.checks = Checks(broker, settings, platform.store, alerter_state)
    if with_gateway:
        assert platform.repository is not None
        replies = ReplyWaiter()
        replies.register(broker)
        alerts = AlertWatcher()
        alerts.register(broker, streams.alerts)
        platform.gateway = create_app(settings, broker, platform.repository, replies, alerts)
    return platform
