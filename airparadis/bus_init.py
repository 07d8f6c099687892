"""`airparadis bus init`: creates or updates the platform's JetStream streams and its KV bucket,
once, from the settings; the workers only bind to them (shared/bus.py `bind_streams`).

Run by `airparadis up` after its nats-server starts, by the compose one-shot `bus-init` before
any worker, and by the Kubernetes Job of the same name. Its NATS user (`bus`) is the only one
allowed to create or change a stream. Safe to run again: what matches the settings is left
alone; a limit or the number of replicas that differs is changed in place (a stream goes from
one to three replicas without losing a message); a storage type is never changed (JetStream
cannot), which stops the command with the reason.

    airparadis bus init                                # AIRPARADIS_STREAM_REPLICAS (1)
    AIRPARADIS_NATS_URL=nats://a:4222,nats://b:4222,nats://c:4222 airparadis bus init --replicas 3
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import nats
import typer
from nats.js.api import KeyValueConfig, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.table import Table

from shared import subjects
from shared.bus import Streams, kv_stream, nats_credentials, nats_servers
from shared.settings import Settings

log = logging.getLogger(__name__)

# What `bus init` keeps in line with the settings; everything else in a stream's config (set
# by an operator: placement, a description) is left as it is.
COMPARED = (
    "subjects",
    "max_age",
    "max_msg_size",
    "max_msgs",
    "max_bytes",
    "discard",
    "duplicate_window",
    "num_replicas",
)
# Errors that pass while a cluster elects its leaders or a node starts: try again.
PASSING = (
    "temporarily unavailable",
    "timeout",
    "no responders",
    "not ready",
    "no leader",
    "insufficient resources",  # a cluster whose other nodes are still starting
)


class BusInitError(RuntimeError):
    """The streams cannot be brought to the settings; the message says why and what to do."""


def alerter_bucket_ttl_s(settings: Settings) -> float:
    """How long the alerter's KV bucket keeps a key: longer than the window and cooldowns."""
    return float(
        max(
            7 * 86_400,
            settings.alert_window_s * 2,
            settings.alert_cooldown_s * 2,
            settings.check_cooldown_s * 2,
        )
    )


def wanted_streams(settings: Settings) -> list[StreamConfig]:
    """The config of every stream the platform uses (the KV bucket's is `wanted_bucket`)."""
    configs = []
    for stream in Streams(settings).all():
        config = stream.config
        configs.append(config.evolve(subjects=list(subjects.STREAMS[stream.name])))
    return configs


def wanted_bucket(settings: Settings) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=subjects.KV_ALERTER,
        ttl=alerter_bucket_ttl_s(settings),
        storage=StorageType.FILE,
        replicas=settings.stream_replicas,
    )


@dataclass
class StreamOutcome:
    """What `bus init` did to one stream, and where it now lives."""

    name: str
    action: str  # created, updated, unchanged
    changes: list[str] = field(default_factory=list)
    replicas: int = 1
    leader: str | None = None
    peers: list[str] = field(default_factory=list)  # the other replicas, "name (current)"
    messages: int = 0

    @classmethod
    def of(cls, info: StreamInfo, action: str, changes: list[str] | None = None) -> StreamOutcome:
        cluster = info.cluster
        peers = [
            f"{peer.name} ({'offline' if peer.offline else 'current' if peer.current else 'lags'})"
            for peer in (cluster.replicas or [] if cluster else [])
        ]
        return cls(
            name=info.config.name or "",
            action=action,
            changes=changes or [],
            replicas=info.config.num_replicas or 1,
            # One server names no leader worth showing (a stream of one replica leads itself).
            leader=cluster.leader if cluster and (info.config.num_replicas or 1) > 1 else None,
            peers=peers,
            messages=info.state.messages,
        )


def differences(current: StreamConfig, wanted: StreamConfig) -> dict[str, tuple[Any, Any]]:
    """The compared fields whose value differs: name -> (current, wanted)."""
    found = {}
    for name in COMPARED:
        have, want = getattr(current, name), getattr(wanted, name)
        if want is None:
            continue
        if name == "subjects":
            have, want = sorted(have or []), sorted(want)
        if name == "num_replicas":
            have = have or 1
        if have != want:
            found[name] = (have, want)
    return found


def describe_change(name: str, have: Any, want: Any) -> str:
    label = {"num_replicas": "replicas", "max_age": "max age (s)"}.get(name, name.replace("_", " "))
    show = (lambda v: getattr(v, "value", v)) if name == "discard" else (lambda v: v)
    return f"{label} {show(have)} → {show(want)}"


async def ensure_stream(js: Any, wanted: StreamConfig) -> StreamOutcome:
    """Create the stream, or bring the compared fields of an existing one to `wanted`."""
    assert wanted.name
    try:
        current = await js.stream_info(wanted.name)
    except NotFoundError:
        return StreamOutcome.of(await js.add_stream(config=wanted), "created")
    if wanted.storage is not None and current.config.storage != wanted.storage:
        raise BusInitError(
            f"stream {wanted.name} is kept in {current.config.storage.value} storage, the "
            f"platform wants {wanted.storage.value}: JetStream cannot change it in place. "
            f"Back it up and delete it (`nats stream rm {wanted.name}`), then run this again."
        )
    found = differences(current.config, wanted)
    if not found:
        return StreamOutcome.of(current, "unchanged")
    updated = current.config.evolve(**{name: want for name, (_, want) in found.items()})
    info = await js.update_stream(config=updated)
    changes = [describe_change(name, have, want) for name, (have, want) in found.items()]
    log.info("stream updated", extra={"stream": wanted.name, "changes": changes})
    return StreamOutcome.of(info, "updated", changes)


async def ensure_bucket(js: Any, wanted: KeyValueConfig) -> StreamOutcome:
    """Create the KV bucket, or bring its TTL and replicas to `wanted`."""
    name = kv_stream(wanted.bucket)
    try:
        current = await js.stream_info(name)
    except NotFoundError:
        await js.create_key_value(config=wanted)
        return StreamOutcome.of(await js.stream_info(name), "created")
    target = current.config.evolve(max_age=wanted.ttl, num_replicas=wanted.replicas)
    return await ensure_stream(js, target)


def explain(error: Exception, settings: Settings) -> str:
    text = getattr(error, "description", None) or str(error).removeprefix("nats: ")
    lowered = text.lower()
    if "replicas" in lowered and ("not supported" in lowered or "insufficient" in lowered):
        return (
            f"{text}: {settings.stream_replicas} replicas need a JetStream cluster of at least "
            f"{settings.stream_replicas} servers (README, Scaling out); one nats-server keeps 1 "
            "(AIRPARADIS_STREAM_REPLICAS=1)."
        )
    if "permissions violation" in lowered or "authorization" in lowered:
        return (
            f"{text}: this NATS user may not create streams; run `bus init` as the `bus` user "
            "(AIRPARADIS_NATS_USER=bus)."
        )
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def init_bus(settings: Settings, wait_s: float = 60.0) -> list[StreamOutcome]:
    """Bring every stream and the KV bucket to the settings; retried for up to `wait_s` while
    the servers are unreachable or the cluster has no leader yet."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            # Each attempt bounded: a server that accepts but never answers cannot hold it.
            return await asyncio.wait_for(_init_once(settings), timeout=max(wait_s, 30.0))
        except BusInitError:
            raise
        except Exception as error:
            reason = explain(error, settings)
            passing = isinstance(error, (OSError, TimeoutError, nats.errors.NoServersError)) or any(
                word in reason.lower() for word in PASSING
            )
            if not passing or time.monotonic() >= deadline:
                raise BusInitError(reason) from error
            log.warning("bus not ready; trying again", extra={"reason": reason})
            await asyncio.sleep(1.0)


async def _init_once(settings: Settings) -> list[StreamOutcome]:
    refusals: list[str] = []

    async def on_error(error: Exception) -> None:
        # A request this user may not send is refused asynchronously; its caller only times out.
        if "permissions violation" in str(error).lower():
            refusals.append(str(error).strip().strip("'"))

    nc = await nats.connect(
        nats_servers(settings),
        connect_timeout=2,
        allow_reconnect=False,
        # One attempt per server (0 would make nats-py try the first connection for ever).
        max_reconnect_attempts=1,
        error_cb=on_error,
        **nats_credentials(settings),
    )
    try:
        js = nc.jetstream(timeout=10)
        outcomes = [await ensure_stream(js, wanted) for wanted in wanted_streams(settings)]
        outcomes.append(await ensure_bucket(js, wanted_bucket(settings)))
        return outcomes
    except TimeoutError as error:
        if refusals:
            raise BusInitError(explain(RuntimeError(refusals[0]), settings)) from error
        raise
    finally:
        await nc.close()


app = typer.Typer(
    help="The JetStream streams: created and kept in line with the settings.",
    no_args_is_help=True,
)
console = Console()


@app.command("init")
def init(
    replicas: Annotated[
        int | None,
        typer.Option(
            min=1, max=5, help="Copies of each stream (default AIRPARADIS_STREAM_REPLICAS, 1)."
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to keep trying while NATS is unreachable or has no leader."),
    ] = 60.0,
) -> None:
    """Create the streams and the KV bucket, or bring them to the settings (idempotent)."""
    settings = Settings()
    if replicas is not None:
        settings = settings.model_copy(update={"stream_replicas": replicas})
    try:
        outcomes = asyncio.run(init_bus(settings, wait_s=wait))
    except BusInitError as error:
        console.print(f"[red]bus init failed:[/red] {error}")
        raise typer.Exit(1) from None
    table = Table("stream", "what happened", "replicas", "leader", "other replicas", "messages")
    for outcome in outcomes:
        action = outcome.action + (f": {', '.join(outcome.changes)}" if outcome.changes else "")
        table.add_row(
            outcome.name,
            action,
            str(outcome.replicas),
            outcome.leader or "-",
            ", ".join(outcome.peers) or "-",
            f"{outcome.messages:,}",
        )
    console.print(table)
