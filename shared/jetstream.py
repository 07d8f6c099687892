"""The hot path on plain nats-py: durable pull consumers read in batches, JetStream publishes
confirmed together, and the loop each batch stage runs (preprocess, infer, store).

FastStream runs every message through its middlewares, dependency resolution and task groups,
and its pull subscriber waits out its whole batch window; here that machinery cost more than
the work. A stage instead:
- keeps one pull request open on its durable consumer, so the server pushes messages into a
  local buffer as soon as it has them, and takes whatever is buffered, up to its batch size:
  a lone tweet on an idle bus goes through at once, batches grow only when traffic queues up;
- decodes and validates the batch, does its work once (the handler), publishes the outputs
  without waiting between them and awaits all their acknowledgements together;
- then settles every input: ack when its outputs are stored in JetStream; dead-letter and
  terminate when it can never be processed; nak with back-off when publishing failed. A
  dependency that is down (RetryLater) holds the batch, retried with back-off and kept alive
  with in-progress acks, so its deliveries are not spent and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from nats.errors import MaxPayloadError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import BaseModel, ValidationError

from shared import subjects
from shared.bus import (
    MSG_ID_HEADER,
    RetryLater,
    backoff_s,
    dead_letter_for,
    delivery_count,
    describe_payload_error,
    stream_sequence,
)
from shared.scrub import TextPolicy
from shared.settings import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=BaseModel)

STATUS_HEADER = "Status"
DESCRIPTION_HEADER = "Description"
HEARTBEAT = "100"
NO_RESPONDERS = "503"
# A pull request the server did not end (it lost it in a restart) is given up locally after
# its expiry plus this much.
REQUEST_GRACE_S = 1.0


# --- Publishing, acknowledgements awaited together ---


@dataclass(frozen=True)
class Outgoing:
    """One message to store in JetStream, on behalf of the input at index `source`."""

    subject: str
    payload: bytes
    msg_id: str
    source: int = -1


@dataclass(frozen=True)
class Published:
    """What JetStream said of one publish: stored (maybe as a duplicate), refused (never
    stored: `error` says why), or unconfirmed (no answer in time: it may be stored).
    `transient`: the bus, not the message, is the problem (not connected, no answer, a stream
    electing its leader): the same publish will succeed later."""

    ok: bool
    duplicate: bool = False
    error: str | None = None
    unconfirmed: bool = False
    transient: bool = False


class _Awaited:
    """The acknowledgements one publish() call waits for."""

    __slots__ = ("answers", "complete", "left")

    def __init__(self, size: int) -> None:
        self.answers: list[Msg | Published | None] = [None] * size
        self.left = size
        self.complete = asyncio.Event()

    def settle(self, index: int, answer: Msg | Published) -> None:
        self.answers[index] = answer
        self.left -= 1
        if self.left == 0:
            self.complete.set()


class JetStreamPublisher:
    """Publishes to JetStream and awaits the acknowledgements of a whole batch at once.

    Acks come back on one wildcard inbox of this connection, each on its own token, and are
    counted off per call: no future or task per message. `Nats-Msg-Id` on every message makes
    a re-publish (after a crash, a retry) a duplicate that JetStream drops.
    """

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = f"{nc.new_inbox()}."
        self._waiting: dict[str, tuple[_Awaited, int]] = {}
        self._next = 0
        self._sub: Subscription | None = None

    async def start(self) -> None:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if entry is not None:
            awaited, index = entry
            awaited.settle(index, msg)

    async def publish(self, items: Sequence[Outgoing], wait_s: float) -> list[Published]:
        """Publish every item, then wait up to `wait_s` for all their acknowledgements."""
        if not items:
            return []
        awaited = _Awaited(len(items))
        tokens = []
        for index, item in enumerate(items):
            token = str(self._next)
            self._next += 1
            self._waiting[token] = (awaited, index)
            tokens.append(token)
            try:
                await self._nc.publish(
                    item.subject,
                    item.payload,
                    reply=self._prefix + token,
                    headers={MSG_ID_HEADER: item.msg_id},
                )
            except Exception as error:  # not connected, payload too large: never sent
                if self._waiting.pop(token, None) is not None:
                    awaited.settle(
                        index,
                        Published(
                            False,
                            error=f"not sent: {describe_nats_error(error)}",
                            transient=not isinstance(error, MaxPayloadError),
                        ),
                    )
        if awaited.left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(awaited.complete.wait(), timeout=wait_s)
        for token in tokens:
            self._waiting.pop(token, None)
        return [self._result(answer, wait_s) for answer in awaited.answers]

    async def publish_one(self, item: Outgoing, wait_s: float) -> Published:
        [result] = await self.publish([item], wait_s)
        return result

    @staticmethod
    def _result(msg: Msg | Published | None, timeout: float) -> Published:
        if isinstance(msg, Published):
            return msg
        if msg is None:
            return Published(
                False,
                error=f"JetStream did not confirm within {timeout:g} s",
                unconfirmed=True,
                transient=True,
            )
        if msg.headers and msg.headers.get(STATUS_HEADER) == NO_RESPONDERS:
            # No stream answers: none captures the subject, or its leader is being elected.
            return Published(False, error="no stream captures this subject", transient=True)
        try:
            answer = json.loads(msg.data)
        except ValueError:
            return Published(False, error=f"unreadable acknowledgement {msg.data[:80]!r}")
        if "error" in answer:
            error = answer["error"]
            description = str(error.get("description", error))
            passing = error.get("code") == 503 or "unavailable" in description.lower()
            return Published(False, error=description, transient=passing)
        return Published(True, duplicate=bool(answer.get("duplicate")))


def describe_nats_error(error: BaseException) -> str:
    name = type(error).__name__
    text = str(error).removeprefix("nats: ")
    return f"{name}: {text}" if text else name


# --- Pull consumer ---


def hot_consumer_config(
    durable: str, subject: str, settings: Settings, max_ack_pending: int = 10_000
) -> ConsumerConfig:
    """A durable pull consumer with explicit acks and bounded deliveries: after
    `max_deliveries` a message is dead-lettered by the stage; the consumer's own limit (one
    more) settles it even if the stage dies on its last delivery."""
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliveries + 1,
        max_ack_pending=max_ack_pending,
    )


class PullConsumer:
    """A durable pull consumer with one pull request always open, filling a local buffer.

    Each pull request has its own reply subject, so a late status of an old request (expired,
    or lost in a server restart) is never taken for the current one.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        config: ConsumerConfig,
        *,
        batch_size: int,
        expires_s: float = 5.0,
    ) -> None:
        assert config.durable_name
        self._nc = nc
        self.stream = stream
        self.durable = config.durable_name
        self.config = config
        self.batch_size = batch_size
        self.expires_s = expires_s
        self._inbox = nc.new_inbox()
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{self.durable}"
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._request = 0  # number of the pull request open now (0: none)
        self._requests_made = 0
        self._open = 0  # messages the open request may still deliver
        self._request_ends = 0.0
        self._sub: Subscription | None = None
        self._missing = False  # the consumer does not exist (deleted, or the stream is new)
        self._quiet_until = 0.0
        self._closed = False

    async def start(self) -> None:
        await self.ensure()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_message)
        await self._request_more()

    async def ensure(self) -> None:
        """Create the durable consumer, or bring its settings up to date."""
        await self._nc.jetstream().add_consumer(self.stream, self.config)
        self._missing = False

    async def close(self) -> None:
        """Stop pulling; hand the buffered messages back for another replica to take."""
        self._closed = True
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        while self._buffer:
            with contextlib.suppress(Exception):
                await self._buffer.popleft().nak()

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply:  # a message of the stream (it comes with its own subject)
            self._buffer.append(msg)
            if self._request:
                self._open -= 1
                if self._open <= 0:
                    self._request = 0
            self._arrived.set()
        else:  # a status, on the reply subject of its request: heartbeat, expired, gone...
            status = (msg.headers or {}).get(STATUS_HEADER, "")
            request = msg.subject.rsplit(".", 1)[-1]
            if status == HEARTBEAT or request != str(self._request):
                return
            self._request = 0
            if status == NO_RESPONDERS:
                self._missing = True
            elif status not in ("404", "408"):
                # Refused (409: too many waiting requests, a leader change…): ask again a
                # moment later rather than at once.
                self._quiet_until = time.monotonic() + 1.0
                log.warning(
                    "pull request ended",
                    extra={
                        "durable": self.durable,
                        "status": status,
                        "description": (msg.headers or {}).get(DESCRIPTION_HEADER),
                    },
                )
            self._arrived.set()  # wake the reader: it decides on the next request
        if not self._missing:
            await self._request_more()

    async def _request_more(self) -> None:
        """Open a pull request for a batch, unless one is open or a batch is already here."""
        if self._closed or self._request or len(self._buffer) >= self.batch_size:
            return
        if not self._nc.is_connected or time.monotonic() < self._quiet_until:
            return
        self._requests_made += 1
        number = self._requests_made
        request = {"batch": self.batch_size, "expires": int(self.expires_s * 1e9)}
        try:
            await self._nc.publish(
                self._next_subject, json.dumps(request).encode(), reply=f"{self._inbox}.{number}"
            )
        except Exception as error:  # disconnected meanwhile: the reader asks again
            log.debug("pull request not sent: %s", describe_nats_error(error))
            return
        self._request = number
        self._open = self.batch_size
        self._request_ends = time.monotonic() + self.expires_s + REQUEST_GRACE_S

    async def next_batch(
        self, max_size: int, linger_s: float = 0.0, wait_s: float = 1.0
    ) -> list[Msg]:
        """Up to `max_size` messages: what is buffered now, or the first to arrive within
        `wait_s` (then up to `linger_s` more for the batch to fill). [] when none came."""
        deadline = time.monotonic() + wait_s
        while not self._buffer:
            await self._keep_requesting()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))
        if linger_s > 0 and len(self._buffer) < max_size:
            fill_by = time.monotonic() + linger_s
            while len(self._buffer) < max_size and (left := fill_by - time.monotonic()) > 0:
                await self._request_more()
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), timeout=left)
        batch = [self._buffer.popleft() for _ in range(min(max_size, len(self._buffer)))]
        await self._request_more()
        return batch

    async def _keep_requesting(self) -> None:
        """Mend what can stop the flow: a request the server forgot, a consumer that is gone."""
        if self._request and time.monotonic() > self._request_ends:
            self._request = 0
        if self._missing:
            try:
                await self.ensure()
            except Exception as error:
                log.warning(
                    "cannot create the consumer; trying again",
                    extra={"durable": self.durable, "reason": describe_nats_error(error)},
                )
                await asyncio.sleep(1.0)
                return
            log.info("consumer created again", extra={"durable": self.durable})
        await self._request_more()

    def reset(self) -> None:
        """After a reconnection: requests made before it are lost, ask again at once."""
        self._request = 0

    @property
    def buffered(self) -> list[Msg]:
        return list(self._buffer)


# --- Decoding a batch ---


def decode(raw: Msg, model: type[EventT], max_bytes: int) -> EventT:
    """One message as its event; ValueError with the reason a person can act on."""
    data = raw.data or b""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"payload of {len(data):,} bytes is over the {max_bytes:,}-byte limit of {raw.subject}"
        )
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        raise ValueError(describe_payload_error(data, error)) from error
    except RecursionError as error:  # pydantic limits the depth itself; kept as a backstop
        raise ValueError("payload is nested too deep") from error


class PayloadTooLarge(ValueError):
    """A payload bigger than any valid message of its subject."""


def decode_batch(
    raws: Sequence[Msg], model: type[EventT], max_bytes: int
) -> tuple[list[tuple[int, EventT]], dict[int, str]]:
    """The valid events of a batch with their index, and the reason of each invalid one."""
    events: list[tuple[int, EventT]] = []
    rejected: dict[int, str] = {}
    for index, raw in enumerate(raws):
        try:
            events.append((index, decode(raw, model, max_bytes)))
        except ValueError as error:
            rejected[index] = str(error)
    return events, rejected


# --- The stage loop ---


@dataclass
class Outcome:
    """What a handler made of a batch, by input index: messages to publish (each on behalf of
    one input), answers to send once those are stored, inputs that can never be processed
    (dead-lettered at once) and inputs that failed this time (retried, then dead-lettered)."""

    outputs: list[Outgoing] = field(default_factory=list)
    replies: list[tuple[int, str, bytes]] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


Handler = Callable[[Sequence["Msg"]], Awaitable[Outcome]]


class BatchStage:
    """Reads a durable consumer in batches and settles every message it takes.

    `handle` may raise RetryLater (a dependency is down: the batch is held and tried again);
    any other exception is taken for a message the handler cannot cope with: the batch is
    retried message by message so that one bad message does not fail its neighbours.
    """

    def __init__(
        self,
        *,
        worker: str,
        consumer: PullConsumer,
        publisher: JetStreamPublisher,
        handle: Handler,
        settings: Settings,
        linger_s: float = 0.0,
    ) -> None:
        self.worker = worker
        self.consumer = consumer
        self.publisher = publisher
        self.handle = handle
        self.settings = settings
        self.linger_s = linger_s
        self._stopping = asyncio.Event()
        self._nc = consumer._nc

    @property
    def name(self) -> str:
        return f"{self.worker}:{self.consumer.durable}"

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stop(); the batch in hand is finished (or handed back) first."""
        while not self._stopping.is_set():
            try:
                await self.consumer.start()
                break
            except Exception as error:
                log.warning(
                    "cannot bind the consumer yet; trying again",
                    extra={"durable": self.consumer.durable, "reason": describe_nats_error(error)},
                )
                await self._pause(2.0)
        try:
            while not self._stopping.is_set():
                batch = await self.consumer.next_batch(
                    self.consumer.batch_size, linger_s=self.linger_s
                )
                if batch:
                    await self._process(batch)
        finally:
            await self.consumer.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _process(self, batch: list[Msg]) -> None:
        outcome = await self._handle_holding(batch)
        if outcome is None:  # stopped while a dependency was down: hand the batch back
            for raw in batch:
                await _settle(raw, b"-NAK")
            return
        results = await self._publish_holding(batch, outcome.outputs)
        unpublished: dict[int, str] = {}
        for item, result in zip(outcome.outputs, results, strict=True):
            if not result.ok:
                unpublished.setdefault(item.source, result.error or "publish failed")
        for source, subject, payload in outcome.replies:
            if source not in unpublished and source not in outcome.failed:
                with contextlib.suppress(Exception):  # the caller may be gone: best effort
                    await self._nc.publish(subject, payload)
        await self._settle_batch(batch, outcome, unpublished)

    async def _handle_holding(self, batch: list[Msg]) -> Outcome | None:
        """The handler's outcome; while it raises RetryLater, hold the batch and try again."""
        attempt = 0
        last_touch = time.monotonic()
        while True:
            try:
                return await self._handle_isolating(batch)
            except RetryLater as error:
                attempt += 1
                last_touch = await self._hold(
                    batch,
                    attempt,
                    last_touch,
                    "dependency unavailable; holding the batch",
                    messages=len(batch),
                    reason=str(error),
                )
            if self._stopping.is_set():
                return None

    async def _hold(
        self, batch: list[Msg], attempt: int, last_touch: float, why: str, **extra: object
    ) -> float:
        """One pause of a held batch: said in the log (first time, then every tenth), the batch
        (and what is buffered behind it) kept ours with in-progress acks, so that it is neither
        redelivered nor spends a delivery, then the back-off. The time of the last touch."""
        if attempt == 1 or attempt % 10 == 0:
            log.warning(
                why,
                extra={
                    "worker": self.worker,
                    "durable": self.consumer.durable,
                    "attempt": attempt,
                    **extra,
                },
            )
        now = time.monotonic()
        if now - last_touch > self.settings.ack_wait_s / 3:
            for raw in [*batch, *self.consumer.buffered]:
                await _settle(raw, b"+WPI")
            last_touch = now
        await self._pause(min(backoff_s(attempt), self.settings.ack_wait_s / 3))
        return last_touch

    async def _publish_holding(self, batch: list[Msg], outputs: list[Outgoing]) -> list[Published]:
        """Publish the outputs; while the bus is the problem (disconnected, no confirmation, a
        stream electing its leader after a node died), hold the batch and publish again what
        was not stored, rather than spend the inputs' deliveries on a fault of the bus and
        dead-letter good messages. Each output keeps its Nats-Msg-Id: a re-publish of one that
        was stored but not confirmed is dropped as a duplicate."""
        timeout = self.settings.publish_timeout_s
        results = await self.publisher.publish(outputs, timeout)
        attempt, last_touch = 0, time.monotonic()
        while not self._stopping.is_set():
            waiting = [i for i, result in enumerate(results) if result.transient]
            if not waiting:
                break
            attempt += 1
            last_touch = await self._hold(
                batch,
                attempt,
                last_touch,
                "bus unavailable; holding the batch and publishing again",
                outputs=len(waiting),
                reason=results[waiting[0]].error,
            )
            again = await self.publisher.publish([outputs[i] for i in waiting], timeout)
            for index, result in zip(waiting, again, strict=True):
                results[index] = result
        return results

    async def _handle_isolating(self, batch: list[Msg]) -> Outcome:
        try:
            return await self.handle(batch)
        except RetryLater:
            raise
        except Exception as error:
            if len(batch) == 1:
                return Outcome(failed={0: describe_nats_error(error)})
            log.warning(
                "batch failed; retrying its messages one by one",
                extra={"worker": self.worker, "reason": describe_nats_error(error)},
            )
        outcome = Outcome()
        for index, raw in enumerate(batch):
            try:
                single = await self.handle([raw])
            except RetryLater:
                raise
            except Exception as error:
                single = Outcome(failed={0: describe_nats_error(error)})
            outcome.outputs += [_moved(o, index) for o in single.outputs]
            outcome.replies += [(index, s, p) for _, s, p in single.replies]
            if single.rejected:
                outcome.rejected[index] = next(iter(single.rejected.values()))
            if single.failed:
                outcome.failed[index] = next(iter(single.failed.values()))
        return outcome

    async def _settle_batch(
        self, batch: list[Msg], outcome: Outcome, unpublished: dict[int, str]
    ) -> None:
        dead: list[tuple[Msg, str]] = []
        retried: list[tuple[int, str]] = []
        for index, raw in enumerate(batch):
            reason = outcome.rejected.get(index)
            problem = outcome.failed.get(index) or unpublished.get(index)
            if reason is None and problem is not None:
                deliveries = delivery_count(raw)
                if deliveries < self.settings.max_deliveries:
                    delay = int(backoff_s(deliveries) * 1e9)
                    await _settle(raw, b'-NAK {"delay": %d}' % delay)
                    retried.append((deliveries, problem))
                    continue
                reason = f"failed on each of {deliveries} deliveries, last: {problem}"
            if reason is not None:
                dead.append((raw, reason))
            else:
                await _settle(raw, b"+ACK")  # a publish into the buffer: no task per message
        if retried:
            log.warning(
                "messages not processed, they will be redelivered",
                extra={
                    "worker": self.worker,
                    "subject": batch[0].subject,
                    "messages": len(retried),
                    "deliveries": max(d for d, _ in retried),
                    "reason": retried[0][1],
                },
            )
        if dead:
            await dead_letter(self.publisher, dead, self.worker, self.settings)


async def _settle(raw: Msg, how: bytes) -> None:
    """Ack, nak, term or mark in progress; a settle that cannot be sent (the bus is gone) is
    redelivered by JetStream after ack_wait, which the next deliveries handle."""
    try:
        await raw._client.publish(raw.reply, how)
    except Exception as error:
        log.debug("could not settle a message: %s", describe_nats_error(error))


async def dead_letter(
    publisher: JetStreamPublisher,
    messages: Sequence[tuple[Msg, str]],
    worker: str,
    settings: Settings,
) -> None:
    """Publish each message's dead letter (bounded in size) to dlq.<subject>, then terminate
    it, even when the dead letter could not be stored: a message is never left unsettled."""
    letters = []
    for raw, reason in messages:
        letter = dead_letter_for(
            raw, reason, worker, TextPolicy.of(settings), settings.dead_letter_keep_bytes
        )
        seq = stream_sequence(raw)
        which = seq if seq is not None else letter.payload_sha256
        letters.append(
            Outgoing(
                subject=subjects.dead_letter_subject(raw.subject),
                payload=letter.model_dump_json().encode(),
                msg_id=f"dlq-{worker}-{raw.subject}-{which}",
            )
        )
    results = await publisher.publish(letters, settings.publish_timeout_s)
    lost = [r.error for r in results if not r.ok]
    for raw, reason in messages:
        await _settle(raw, b"+TERM " + reason[:200].encode())
    log.warning(
        "dead-lettered messages",
        extra={
            "worker": worker,
            "subject": messages[0][0].subject,
            "messages": len(messages),
            "first_reason": messages[0][1][:300],
            "letters_not_stored": len(lost),
            **({"why_not_stored": lost[0]} if lost else {}),
        },
    )


def _moved(item: Outgoing, index: int) -> Outgoing:
    return Outgoing(item.subject, item.payload, item.msg_id, index)
