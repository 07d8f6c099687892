"""Wiring to NATS JetStream shared by every process: the connection, streams, dead letters.

One connection per process, opened by FastStream's broker and shared with the hot path
(shared/jetstream.py). It never gives up on its own: when the server goes away the client
reconnects with a pause between attempts for as long as it takes (or, with a finite
`nats_max_reconnect_attempts`, the process exits and its supervisor restarts it). While it
is disconnected nothing is buffered: a publish fails at once (pending_size=0), so a caller
is told "not accepted" rather than having its message sent behind its back later.

Every durable consumer is a batch stage (shared/jetstream.py). What stays on FastStream is
the control side: core requests (explain, status) and the promotions infer follows (an
ephemeral push consumer); their router's `DeadLetterPolicy` middleware settles each message
once the handler returns:
- handled: ack;
- undecodable, invalid or oversized: dead-lettered at once, since no retry can fix it;
- any other failure: nak with a back-off, and dead-lettered on the last allowed delivery.
Dead letters are bounded: a large payload is cut (its size and SHA-256 kept), and a dead
letter that cannot be stored does not stop the original from being terminated.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from faststream import BaseMiddleware
from faststream.nats import JStream, NatsBroker, NatsRouter
from faststream.nats.security import NatsSecurity, NatsUserPassword
from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy, StorageType
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ValidationError

from shared import subjects
from shared.messages import DeadLetter, RequestFailed
from shared.scrub import TextPolicy
from shared.settings import Settings
from shared.tls import client_context

if TYPE_CHECKING:
    from types import TracebackType

    from faststream._internal.context.repository import ContextRepo
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)
T = TypeVar("T")

# JetStream drops a publish whose Nats-Msg-Id it has seen within this window.
DUPLICATE_WINDOW_S = 120.0
MSG_ID_HEADER = "Nats-Msg-Id"
BUS_LOGGER = "airparadis.bus"
# Headers kept in a dead letter, and the length of each value kept.
DEAD_LETTER_HEADERS = 32
DEAD_LETTER_HEADER_CHARS = 256


class InvalidMessage(ValueError):
    """A payload that can never be processed; it goes straight to the dead-letter subject."""


class RetryLater(RuntimeError):
    """A dependency is down (SMTP, ClickHouse, no model yet): wait and try again; never
    dead-letter for it."""


PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidMessage,
    ValidationError,
    UnicodeDecodeError,
    json.JSONDecodeError,
    RecursionError,
)


# --- The connection ---

_HEADERS_START = b"NATS/1.0\r\n"
_HEADER_LINE = re.compile(rb"([!-9;-~]+):[ \t]*([ -~]*?)[ \t]*\r\n")


def parse_plain_headers(headers: bytes) -> dict[str, str] | None:
    """The headers of a message in their everyday form (`NATS/1.0`, then `Name: value` lines of
    printable ASCII), read as nats-py reads them; None for any other form (a status line, a
    folded or non-ASCII header), which nats-py's own parser then reads."""
    if not headers.startswith(_HEADERS_START) or not headers.endswith(b"\r\n\r\n"):
        return None
    body = headers[len(_HEADERS_START) : -2]
    parsed: dict[str, str] = {}
    position = 0
    for line in _HEADER_LINE.finditer(body):
        if line.start() != position:
            return None
        parsed[line[1].decode()] = line[2].decode()
        position = line.end()
    return parsed if parsed and position == len(body) else None


def read_headers_fast() -> None:
    """nats-py parses the headers of every message with the standard library's e-mail parser,
    about 12 µs a message: one eighth of the CPU of a hot-path stage (py-spy, see the README).
    Read the everyday form directly instead; anything else still goes to nats-py's parser."""
    original = NatsClient._process_headers
    if getattr(original, "reads_plain_headers", False):
        return

    async def process_headers(self: NatsClient, headers: bytes | None) -> dict[str, str] | None:
        plain = parse_plain_headers(headers) if headers else None
        if plain is not None:
            return plain
        parsed: dict[str, str] | None = await original(self, headers)
        return parsed

    process_headers.reads_plain_headers = True  # type: ignore[attr-defined]
    NatsClient._process_headers = process_headers  # type: ignore[method-assign]


@dataclass
class ConnectionState:
    """What this process knows of its NATS connection, for logs, /healthz and /readyz."""

    connected: bool = False
    closed: bool = False
    since: float = field(default_factory=time.monotonic)
    disconnects: int = 0
    last_error: str | None = None
    gone_for_good: asyncio.Event = field(default_factory=asyncio.Event)
    listeners: list[Callable[[], Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        status = "connected" if self.connected else "closed" if self.closed else "reconnecting"
        return {
            "status": status,
            "for_s": round(time.monotonic() - self.since, 1),
            "disconnects": self.disconnects,
            **({"last_error": self.last_error} if self.last_error and not self.connected else {}),
        }


def nats_servers(settings: Settings, servers: str | None = None) -> list[str]:
    """The server URLs to try: the configured list (comma-separated) or the local server."""
    value = servers or settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    return [url.strip() for url in value.split(",") if url.strip()]


def nats_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context NATS connections verify the server with (None: plain TCP)."""
    if settings.nats_tls_ca is None:
        return None
    return client_context(settings.nats_tls_ca, "AIRPARADIS_NATS_TLS_CA")


def nats_credentials(settings: Settings) -> dict[str, Any]:
    """What a plain nats-py `connect()` needs besides the servers: user, password and TLS,
    the same as the broker's (for the commands that talk to the bus without a broker)."""
    return {
        "user": settings.nats_user,
        "password": settings.nats_password,
        "tls": nats_tls(settings),
    }


def reachable_bus_url(settings: Settings) -> str | None:
    """Where a command reaches the platform's bus: the configured NATS URL, else the embedded
    server's if one is listening (None: the platform is not running)."""
    from shared.nats_server import port_open

    if settings.nats_url:
        return settings.nats_url
    if port_open("127.0.0.1", settings.nats_port):
        return f"nats://127.0.0.1:{settings.nats_port}"
    return None


def make_broker(
    settings: Settings,
    servers: str | None = None,
    state: ConnectionState | None = None,
    **kwargs: Any,
) -> NatsBroker:
    """A broker for `servers` (or the configured URLs), with the configured credentials and
    reconnection policy; `state` follows the connection's ups and downs."""
    tls = nats_tls(settings)
    security: NatsSecurity | None = None
    if settings.nats_user:
        security = NatsUserPassword(
            username=settings.nats_user, password=settings.nats_password or "", ssl_context=tls
        )
    elif tls is not None:
        security = NatsSecurity(ssl_context=tls)
    read_headers_fast()
    if state is not None:
        kwargs |= _state_callbacks(state, settings)
    # FastStream logs through our JSON formatter; its per-message "Received/Processed" lines
    # go at DEBUG, since at INFO they would drown everything else.
    kwargs.setdefault("logger", logging.getLogger(BUS_LOGGER))
    kwargs.setdefault("log_level", logging.DEBUG)
    return NatsBroker(
        nats_servers(settings, servers),
        security=security,
        allow_reconnect=True,
        max_reconnect_attempts=settings.nats_max_reconnect_attempts,
        reconnect_time_wait=settings.nats_reconnect_wait_s,  # type: ignore[arg-type]
        pending_size=0,
        connect_timeout=2,
        **kwargs,
    )


def _state_callbacks(state: ConnectionState, settings: Settings) -> dict[str, Any]:
    async def disconnected() -> None:
        if state.connected:
            state.connected, state.since = False, time.monotonic()
            state.disconnects += 1
            log.warning("lost the NATS connection; reconnecting", extra=state.describe())

    async def reconnected() -> None:
        state.connected, state.since = True, time.monotonic()
        log.info("NATS connection back", extra={"disconnects": state.disconnects})
        for listener in state.listeners:
            listener()

    async def closed() -> None:
        if state.closed:
            return
        state.connected, state.closed, state.since = False, True, time.monotonic()
        if settings.nats_max_reconnect_attempts >= 0:
            log.error(
                "gave up on NATS after the configured reconnect attempts; exiting for the "
                "supervisor to restart this process",
                extra={"attempts": settings.nats_max_reconnect_attempts},
            )
        state.gone_for_good.set()

    async def error(exc: Exception) -> None:
        state.last_error = f"{type(exc).__name__}: {exc}".strip(": ")

    return {
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "closed_cb": closed,
        "error_cb": error,
    }


# --- Streams ---


class Streams:
    """The JetStream streams of the platform and their limits: messages kept
    `stream_max_age_days`; tweets and reports at most `max_message_kb` each (a larger publish
    is refused at once, with the reason); dead letters bounded in number and bytes; every
    stream kept on `stream_replicas` servers.

    Declared once, by `airparadis bus init` (airparadis/bus_init.py); the workers only bind to
    them (`bind_streams`), so FastStream never declares them either (`declare=False`): a
    worker's start can no longer put back settings an operator changed (three replicas)."""

    def __init__(self, settings: Settings) -> None:
        max_age = settings.stream_max_age_days * 86_400.0
        max_msg = settings.max_message_kb * 1024

        def stream(name: str, **limits: Any) -> JStream:
            return JStream(
                name,
                subjects=subjects.STREAMS[name],
                max_age=max_age,
                duplicate_window=DUPLICATE_WINDOW_S,
                storage=StorageType.FILE,
                num_replicas=settings.stream_replicas,
                declare=False,
                **limits,
            )

        self.tweets = stream(subjects.STREAM_TWEETS, max_msg_size=max_msg)
        self.feedback = stream(subjects.STREAM_FEEDBACK, max_msg_size=max_msg)
        self.alerts = stream(subjects.STREAM_ALERTS)
        self.models = stream(subjects.STREAM_MODELS)
        self.gateway = stream(subjects.STREAM_GATEWAY)
        self.dlq = stream(
            subjects.STREAM_DLQ,
            max_msgs=settings.dlq_max_messages,
            max_bytes=settings.dlq_max_mb * 1024 * 1024,
            discard=DiscardPolicy.OLD,
        )

    def all(self) -> list[JStream]:
        return [self.tweets, self.feedback, self.alerts, self.models, self.gateway, self.dlq]


def kv_stream(bucket: str) -> str:
    """The stream behind a JetStream KV bucket."""
    return f"KV_{bucket}"


async def bind_streams(
    js: JetStreamContext,
    names: list[str],
    *,
    retry_s: float = 1.0,
    remind_every_s: float = 30.0,
) -> None:
    """Wait until every stream in `names` exists and answers (a cluster may still be electing
    its leaders), saying in the log what it waits for and why; never creates one."""
    waiting = list(names)
    said_at: float | None = None
    while True:
        reasons: dict[str, str] = {}
        for name in waiting:
            try:
                await js.stream_info(name)
            except NotFoundError:
                reasons[name] = "does not exist: run `airparadis bus init`"
            except Exception as error:  # timeout, no responders, JetStream not ready
                reasons[name] = f"does not answer ({type(error).__name__}: {error})".replace(
                    "nats: ", ""
                )
        if not reasons:
            if said_at is not None:
                log.info("streams ready", extra={"streams": names})
            return
        waiting = list(reasons)
        now = time.monotonic()
        if said_at is None or now - said_at >= remind_every_s:
            log.warning(
                "waiting for streams",
                extra={"streams": [f"{name} {why}" for name, why in reasons.items()]},
            )
            said_at = now
        await asyncio.sleep(retry_s)


async def publish_event(
    broker: NatsBroker,
    event: BaseModel,
    subject: str,
    *,
    msg_id: str,
    stream: str | None = None,
    ack_within_s: float | None = None,
) -> None:
    """Publish on JetStream with a Nats-Msg-Id, so a re-publish after a crash is dropped;
    `ack_within_s`: how long to wait for JetStream's acknowledgement (None: the client's
    default)."""
    await broker.publish(
        event.model_dump(mode="json"),
        subject,
        headers={MSG_ID_HEADER: msg_id},
        stream=stream,
        timeout=ack_within_s,
    )


# --- Messages that fail ---


def delivery_count(raw: Msg) -> int:
    """How many times JetStream has delivered this message (1 outside JetStream)."""
    try:
        return int(raw.metadata.num_delivered)
    except Exception:  # core NATS or the in-memory test broker carry no JetStream metadata
        return 1


def stream_sequence(raw: Msg) -> int | None:
    try:
        return int(raw.metadata.sequence.stream)
    except Exception:
        return None


def backoff_s(attempt: int) -> float:
    """Pause before attempt `attempt + 1`: 0.5 s doubling, at most 30 s."""
    return float(min(0.5 * 2 ** max(attempt - 1, 0), 30.0))


def dead_letter_for(
    raw: Msg, reason: str, worker: str, policy: TextPolicy, keep_bytes: int = 8192
) -> DeadLetter:
    """The dead-letter record of a raw message: the reason, and the payload's first
    `keep_bytes` bytes with the size and hash of the whole, so the letter stays small.

    Unless text_storage is full, the payload is kept scrubbed (it may be a tweet as an upstream
    app wrote it) and without its base64 copy, which would keep the bytes as sent."""
    data: bytes = raw.data or b""
    kept = data[:keep_bytes]
    try:
        text = kept.decode("utf-8")
        payload_b64 = None
    except UnicodeDecodeError as error:
        if len(kept) < len(data) and error.start >= len(kept) - 3:  # a character cut in two
            text = kept.decode("utf-8", errors="ignore")
            payload_b64 = None
        else:
            text = kept.decode("utf-8", errors="replace")
            payload_b64 = base64.b64encode(kept).decode("ascii")
    if policy.storage != "full":
        text, payload_b64 = policy.ingress(text), None
    headers = {
        str(k)[:DEAD_LETTER_HEADER_CHARS]: str(v)[:DEAD_LETTER_HEADER_CHARS]
        for k, v in list((raw.headers or {}).items())[:DEAD_LETTER_HEADERS]
    }
    return DeadLetter(
        subject=raw.subject,
        reason=reason[:2000],
        worker=worker,
        deliveries=delivery_count(raw),
        payload=text,
        payload_base64=payload_b64,
        payload_bytes=len(data),
        payload_sha256=hashlib.sha256(data).hexdigest(),
        truncated=len(kept) < len(data),
        headers=headers,
    )


def describe_error(exc: BaseException) -> str:
    """A one-line reason a user can act on."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        return f"invalid payload: {problems}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} at position {exc.pos}"
    if isinstance(exc, UnicodeDecodeError):
        return f"payload is not valid UTF-8: {exc.reason} at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "payload is nested too deep"
    return f"{type(exc).__name__}: {exc}"


def describe_payload_error(data: bytes, error: ValidationError) -> str:
    """Why a payload failed validation, naming the first real problem: bytes that are not
    UTF-8 or not JSON are reported as such rather than as the validation error they lead to."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        return describe_error(decode_error)
    json_errors = [e for e in error.errors() if e["type"] == "json_invalid"]
    if json_errors:
        return f"malformed JSON: {json_errors[0]['msg'].removeprefix('Invalid JSON: ')}"
    return describe_error(error)


def reason_for(raw: Msg, exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return describe_payload_error(raw.data or b"", exc)
    return describe_error(exc)


async def send_to_dead_letter(
    broker: NatsBroker, raw: Msg, reason: str, worker: str, policy: TextPolicy, keep_bytes: int
) -> None:
    """Publish the message's dead letter to dlq.<subject>, then terminate its delivery
    (even when the dead letter could not be stored)."""
    letter = dead_letter_for(raw, reason, worker, policy, keep_bytes)
    seq = stream_sequence(raw)
    try:
        await broker.publish(
            letter.model_dump(mode="json"),
            subjects.dead_letter_subject(raw.subject),
            headers={MSG_ID_HEADER: f"dlq-{worker}-{raw.subject}-{seq}"}
            if seq is not None
            else None,
            stream=subjects.STREAM_DLQ,
        )
        stored = True
    except Exception:
        log.exception("could not store a dead letter", extra={"subject": raw.subject})
        stored = False
    log.warning(
        "dead-lettered message",
        extra={"subject": raw.subject, "reason": letter.reason, "worker": worker, "stored": stored},
    )
    await _settle(raw, "term")


def _is_jetstream(raw: Msg) -> bool:
    return bool(raw.reply) and raw.reply.startswith("$JS.ACK")


async def _settle(raw: Msg, how: str, delay: float | None = None) -> None:
    # A core request's reply subject is the caller's inbox: never send it an ack.
    if getattr(raw, "_ackd", False) or not _is_jetstream(raw):
        return
    try:
        if how == "ack":
            await raw.ack()
        elif how == "nak":
            await raw.nak(delay=delay)
        else:
            await raw.term()
    except Exception:  # a settle that fails is redelivered by JetStream after ack_wait
        log.exception("could not %s message", how, extra={"subject": raw.subject})


def _raw_messages(msg: Any) -> list[Msg]:
    """The NATS messages behind a FastStream message: one, or a batch's list."""
    return list(msg) if isinstance(msg, list) else [msg]


class DeadLetterPolicy:
    """Router middleware factory: acks, retries or dead-letters what its handlers consumed."""

    def __init__(self, broker: NatsBroker, worker: str, settings: Settings) -> None:
        self.broker = broker
        self.worker = worker
        self.max_deliveries = settings.max_deliveries
        self.keep_bytes = settings.dead_letter_keep_bytes
        self.text_policy = TextPolicy.of(settings)

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, policy=self)


class _DeadLetterScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, policy: DeadLetterPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        raws = _raw_messages(self.msg)
        if exc_val is None:
            for raw in raws:
                await _settle(raw, "ack")
            return False
        if not isinstance(exc_val, Exception):  # cancellation: let JetStream redeliver
            return False
        subscriber = self.context.get_local("handler_", None)
        if getattr(subscriber, "stream", None) is None:
            # A core request: answer the caller; there is nothing to redeliver.
            for raw in raws:
                await self._answer_failure(raw, reason_for(raw, exc_val))
            return True
        for raw in raws:
            if getattr(raw, "_ackd", False):
                continue
            reason = reason_for(raw, exc_val)
            deliveries = delivery_count(raw)
            permanent = isinstance(exc_val, PERMANENT_ERRORS)
            if permanent or deliveries >= self.policy.max_deliveries:
                await send_to_dead_letter(
                    self.policy.broker,
                    raw,
                    reason,
                    self.policy.worker,
                    self.policy.text_policy,
                    self.policy.keep_bytes,
                )
            else:
                log.warning(
                    "processing failed, will retry",
                    extra={
                        "subject": raw.subject,
                        "worker": self.policy.worker,
                        "deliveries": deliveries,
                        "reason": reason,
                    },
                )
                await _settle(raw, "nak", delay=backoff_s(deliveries))
        return True

    async def _answer_failure(self, raw: Msg, reason: str) -> None:
        log.warning(
            "request failed",
            extra={"subject": raw.subject, "worker": self.policy.worker, "reason": reason},
        )
        if raw.reply:
            answer = RequestFailed(kind="invalid_request", reason=reason)
            await self.policy.broker.publish(answer.model_dump(mode="json"), raw.reply)


def worker_router(broker: NatsBroker, worker: str, settings: Settings) -> NatsRouter:
    """A router whose subscribers are settled by the dead-letter policy: core requests get a
    typed failure answer, JetStream messages are acked, retried or dead-lettered."""
    return NatsRouter(middlewares=[DeadLetterPolicy(broker, worker, settings)])
