"""Wiring to NATS JetStream shared by every worker: broker, streams, publishing, dead letters.

Workers subscribe with `ack_policy=AckPolicy.MANUAL` and the `DeadLetterPolicy` middleware
of their router decides the fate of each message once the handler returns:
- handled: ack (a batch handler may already have settled some messages itself);
- undecodable or invalid (bad JSON, bad UTF-8, unknown schema version, failed validation):
  dead-lettered at once, since no retry can fix it;
- any other failure: nak with a back-off, and dead-lettered on the last allowed delivery.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from faststream import AckPolicy, BaseMiddleware
from faststream.nats import JStream, NatsBroker, NatsRouter, PullSub
from faststream.security import SASLPlaintext
from nats.js.api import ConsumerConfig, StorageType
from pydantic import BaseModel, ValidationError

from shared import subjects
from shared.messages import DeadLetter
from shared.settings import Settings

if TYPE_CHECKING:
    from types import TracebackType

    from faststream._internal.context.repository import ContextRepo
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=BaseModel)

# JetStream drops a publish whose Nats-Msg-Id it has seen within this window.
DUPLICATE_WINDOW_S = 120.0
MSG_ID_HEADER = "Nats-Msg-Id"
BUS_LOGGER = "airparadis.bus"


class InvalidMessage(ValueError):
    """A payload that can never be processed; it goes straight to the dead-letter subject."""


class RetryLater(RuntimeError):
    """A dependency is down (SMTP, ClickHouse): retry with back-off, never dead-letter."""


PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidMessage,
    ValidationError,
    UnicodeDecodeError,
    json.JSONDecodeError,
)


def make_broker(settings: Settings, servers: str | None = None, **kwargs: Any) -> NatsBroker:
    """A broker for `servers` (or the configured URL), with the configured credentials."""
    url = servers or settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    auth: dict[str, Any] = {}
    if settings.nats_user:
        auth = {
            "security": SASLPlaintext(
                username=settings.nats_user, password=settings.nats_password or ""
            )
        }
    # FastStream logs through our JSON formatter; its per-message "Received/Processed" lines
    # go at DEBUG, since at INFO they would drown everything else.
    kwargs.setdefault("logger", logging.getLogger(BUS_LOGGER))
    kwargs.setdefault("log_level", logging.DEBUG)
    return NatsBroker(url, **auth, **kwargs)


class Streams:
    """The JetStream streams of the platform, declared by the first subscriber that uses them."""

    def __init__(self, settings: Settings) -> None:
        max_age = settings.stream_max_age_days * 86_400.0

        def stream(name: str) -> JStream:
            return JStream(
                name,
                subjects=subjects.STREAMS[name],
                max_age=max_age,
                duplicate_window=DUPLICATE_WINDOW_S,
                storage=StorageType.FILE,
            )

        self.tweets = stream(subjects.STREAM_TWEETS)
        self.feedback = stream(subjects.STREAM_FEEDBACK)
        self.alerts = stream(subjects.STREAM_ALERTS)
        self.models = stream(subjects.STREAM_MODELS)
        self.dlq = stream(subjects.STREAM_DLQ)

    def all(self) -> list[JStream]:
        return [self.tweets, self.feedback, self.alerts, self.models, self.dlq]


async def declare_streams(broker: NatsBroker, streams: Streams) -> None:
    """Create or update every stream, so publishers work before any subscriber started."""
    js = broker.config.connection_state.stream
    for stream in streams.all():
        try:
            await js.add_stream(config=stream.config, subjects=list(stream.subjects))
        except Exception as exc:  # the stream exists with another config: bring it up to date
            if "already in use" not in str(exc):
                raise
            await js.update_stream(config=stream.config, subjects=list(stream.subjects))


async def publish_event(
    broker: NatsBroker,
    event: BaseModel,
    subject: str,
    *,
    msg_id: str,
    stream: str | None = None,
) -> None:
    """Publish on JetStream with a Nats-Msg-Id, so a re-publish after a crash is dropped."""
    await broker.publish(
        event.model_dump(mode="json"),
        subject,
        headers={MSG_ID_HEADER: msg_id},
        stream=stream,
    )


def delivery_count(raw: Msg) -> int:
    """How many times JetStream has delivered this message (1 outside JetStream)."""
    try:
        return int(raw.metadata.num_delivered)
    except Exception:  # core NATS or the in-memory test broker carry no JetStream metadata
        return 1


def dead_letter_for(raw: Msg, reason: str, worker: str) -> DeadLetter:
    """The dead-letter record of a raw message: reason, deliveries and the payload kept whole."""
    data: bytes = raw.data or b""
    try:
        text = data.decode("utf-8")
        payload_b64 = None
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        payload_b64 = base64.b64encode(data).decode("ascii")
    headers = {k: str(v) for k, v in (raw.headers or {}).items()}
    return DeadLetter(
        subject=raw.subject,
        reason=reason[:2000],
        worker=worker,
        deliveries=delivery_count(raw),
        payload=text,
        payload_base64=payload_b64,
        headers=headers,
    )


async def send_to_dead_letter(broker: NatsBroker, raw: Msg, reason: str, worker: str) -> None:
    """Publish the message to dlq.<subject> with the reason, then terminate its delivery."""
    letter = dead_letter_for(raw, reason, worker)
    msg_id = f"dlq-{worker}-{raw.headers.get(MSG_ID_HEADER, '') if raw.headers else ''}"
    seq = _stream_sequence(raw)
    if seq is not None:  # the stream sequence identifies the message even without a msg id
        msg_id = f"dlq-{worker}-{seq}"
    await broker.publish(
        letter.model_dump(mode="json"),
        subjects.dead_letter_subject(raw.subject),
        headers={MSG_ID_HEADER: msg_id} if seq is not None else None,
        stream=subjects.STREAM_DLQ,
    )
    log.warning(
        "dead-lettered message",
        extra={"subject": raw.subject, "reason": letter.reason, "worker": worker},
    )
    await _settle(raw, "term")


def _stream_sequence(raw: Msg) -> int | None:
    try:
        return int(raw.metadata.sequence.stream)
    except Exception:
        return None


def describe_error(exc: BaseException) -> str:
    """A one-line reason a user can act on."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
            for err in exc.errors()
        )
        return f"invalid payload: {problems}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} at position {exc.pos}"
    if isinstance(exc, UnicodeDecodeError):
        return f"payload is not valid UTF-8: {exc.reason} at byte {exc.start}"
    return f"{type(exc).__name__}: {exc}"


def _is_jetstream(raw: Msg) -> bool:
    return bool(raw.reply) and raw.reply.startswith("$JS.ACK")


def reason_for(raw: Msg, exc: BaseException) -> str:
    """Why a message failed, naming the first real problem: bytes that are not UTF-8 or JSON
    are reported as such rather than as the validation error they lead to."""
    if isinstance(exc, ValidationError):
        try:
            json.loads(raw.data or b"")
        except (UnicodeDecodeError, json.JSONDecodeError) as decode_error:
            return describe_error(decode_error)
    return describe_error(exc)


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


class RequestFailed(BaseModel):
    """The answer to a core request that could not be served."""

    error: str


class DeadLetterPolicy:
    """Router middleware factory: acks, retries or dead-letters what its handlers consumed."""

    def __init__(self, broker: NatsBroker, worker: str, max_deliveries: int) -> None:
        self.broker = broker
        self.worker = worker
        self.max_deliveries = max_deliveries

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, policy=self)

    def backoff(self, deliveries: int) -> float:
        return min(0.5 * 2 ** (deliveries - 1), 30.0)


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
            retry_forever = isinstance(exc_val, RetryLater)
            if permanent or (deliveries >= self.policy.max_deliveries and not retry_forever):
                await send_to_dead_letter(self.policy.broker, raw, reason, self.policy.worker)
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
                await _settle(raw, "nak", delay=self.policy.backoff(deliveries))
        return True

    async def _answer_failure(self, raw: Msg, reason: str) -> None:
        log.warning(
            "request failed",
            extra={"subject": raw.subject, "worker": self.policy.worker, "reason": reason},
        )
        if raw.reply:
            await self.policy.broker.publish(RequestFailed(error=reason).model_dump(), raw.reply)


def durable_consumer(settings: Settings) -> ConsumerConfig:
    """Consumer settings of a durable worker (a new object each time: FastStream fills it in)."""
    return ConsumerConfig(ack_wait=settings.ack_wait_s, filter_subjects=[])


def durable_subscriber(
    router: NatsRouter,
    subject: str,
    stream: JStream,
    durable: str,
    settings: Settings,
    pull: PullSub,
) -> Callable[[Callable[..., Any]], Any]:
    """A durable pull consumer shared by a worker's replicas, acked by the dead-letter policy
    of a `worker_router` (manual ack: only once the work is done)."""
    return router.subscriber(
        subject,
        stream=stream,
        durable=durable,
        config=durable_consumer(settings),
        pull_sub=pull,
        ack_policy=AckPolicy.MANUAL,
    )


def worker_router(broker: NatsBroker, worker: str, settings: Settings) -> NatsRouter:
    """A router whose JetStream subscribers are settled by the dead-letter policy."""
    return NatsRouter(
        middlewares=[DeadLetterPolicy(broker, worker, settings.max_deliveries)],
    )


async def valid_events(
    broker: NatsBroker, raws: Msg | Iterable[Msg], model: type[EventT], worker: str
) -> list[EventT]:
    """Decode a batch message by message: the invalid ones are dead-lettered on their own,
    so one bad payload does not sink its neighbours."""
    events: list[EventT] = []
    for raw in _raw_messages(raws):
        try:
            events.append(model.model_validate_json(raw.data))
        except ValueError as exc:  # ValidationError and JSON/UTF-8 errors are ValueErrors
            await send_to_dead_letter(broker, raw, describe_error(exc), worker)
    return events
