"""How each durable consumer is doing: its backlog, and whether it is stalled.

A consumer is stalled when its messages wait and nothing moves: JetStream hands out nothing,
or what it handed out is not acknowledged, for `stall_after_s`; or when its unacknowledged
messages reach its max_ack_pending, so JetStream hands out nothing more. The gateway reports
it in /readyz and the log says when one stalls and when it flows again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared import subjects

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

# Every durable consumer of the platform, with its stream.
DURABLES: tuple[tuple[str, str], ...] = (
    (subjects.STREAM_TWEETS, subjects.DURABLE_PREPROCESS),
    (subjects.STREAM_TWEETS, subjects.DURABLE_INFER),
    (subjects.STREAM_TWEETS, subjects.DURABLE_STORE_PREDICTIONS),
    (subjects.STREAM_FEEDBACK, subjects.DURABLE_STORE_FEEDBACK),
    (subjects.STREAM_FEEDBACK, subjects.DURABLE_ALERTER),
    (subjects.STREAM_ALERTS, subjects.DURABLE_STORE_ALERTS),
    (subjects.STREAM_ALERTS, subjects.DURABLE_MAILER),
    (subjects.STREAM_MODELS, subjects.DURABLE_STORE_REFERENCES),
)


@dataclass
class ConsumerHealth:
    stream: str
    durable: str
    exists: bool = False
    pending: int = 0  # in the stream, not yet handed out
    ack_pending: int = 0  # handed out, not yet acknowledged
    max_ack_pending: int = 0
    redelivered: int = 0
    stalled: bool = False
    reason: str | None = None

    @property
    def backlog(self) -> int:
        return self.pending + self.ack_pending

    def describe(self) -> dict[str, Any]:
        return {
            "durable": self.durable,
            "backlog": self.backlog,
            "ack_pending": self.ack_pending,
            "stalled": self.stalled,
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass
class _Progress:
    delivered: int = -1
    ack_floor: int = -1
    moved_at: float = field(default_factory=time.monotonic)


def judge(
    health: ConsumerHealth,
    delivered: int,
    ack_floor: int,
    progress: _Progress,
    now: float,
    stall_after_s: float,
) -> None:
    """Fill in `stalled` and `reason` from this sample and the consumer's last progress."""
    if delivered != progress.delivered or ack_floor != progress.ack_floor:
        progress.delivered, progress.ack_floor, progress.moved_at = delivered, ack_floor, now
    if health.max_ack_pending > 0 and health.ack_pending >= health.max_ack_pending:
        health.stalled = True
        health.reason = (
            f"{health.ack_pending} messages handed out and not acknowledged: at the consumer's "
            "limit, nothing more is handed out"
        )
    elif health.backlog > 0 and now - progress.moved_at > stall_after_s:
        health.stalled = True
        health.reason = (
            f"{health.backlog} messages waiting and nothing handed out or acknowledged for "
            f"{now - progress.moved_at:.0f} s"
        )
    elif health.backlog == 0:
        progress.moved_at = now  # idle is not stalled


class ConsumerWatch:
    """Samples every durable consumer; keeps the last health of each."""

    def __init__(
        self,
        nc: Client,
        stall_after_s: float,
        durables: tuple[tuple[str, str], ...] = DURABLES,
    ) -> None:
        self._js = nc.jetstream()
        self.stall_after_s = stall_after_s
        self.durables = durables
        self.health: dict[str, ConsumerHealth] = {}
        self._progress: dict[str, _Progress] = {}

    async def sample(self) -> list[ConsumerHealth]:
        now = time.monotonic()
        sampled = []
        for stream, durable in self.durables:
            health = ConsumerHealth(stream, durable)
            try:
                info = await self._js.consumer_info(stream, durable, timeout=2.0)
            except Exception as error:
                health.reason = f"no information: {type(error).__name__} {error}".strip()
                previous = self.health.get(durable)
                if previous is not None and previous.exists and "NotFound" not in health.reason:
                    health = previous  # the bus is away: keep the last figures
            else:
                health.exists = True
                health.pending = int(info.num_pending or 0)
                health.ack_pending = int(info.num_ack_pending or 0)
                health.redelivered = int(info.num_redelivered or 0)
                health.max_ack_pending = int(info.config.max_ack_pending or 0)
                judge(
                    health,
                    int(info.delivered.stream_seq or 0) if info.delivered else 0,
                    int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0,
                    self._progress.setdefault(durable, _Progress()),
                    now,
                    self.stall_after_s,
                )
            self._log_change(self.health.get(durable), health)
            self.health[durable] = health
            sampled.append(health)
        return sampled

    @staticmethod
    def _log_change(before: ConsumerHealth | None, after: ConsumerHealth) -> None:
        was = before is not None and before.stalled
        if after.stalled and not was:
            log.warning("consumer stalled", extra=after.describe())
        elif was and not after.stalled and after.exists:
            log.info("consumer flowing again", extra=after.describe())

    async def run_forever(self, every_s: float = 5.0) -> None:
        while True:
            try:
                await self.sample()
            except Exception:
                log.warning("could not sample the consumers", exc_info=True)
            await asyncio.sleep(every_s)
