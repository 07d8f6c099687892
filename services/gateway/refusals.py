"""The requests the rate limits refused, counted where Grafana reads: the gateway sums them per
(limit, kind of bucket, key name) and publishes one RequestsRefused on gateway.refused every
`refusals_flush_s` while there are any, and a last one at shutdown; the store keeps them in the
`refusals` table. A flood of refused requests is a few counters here, never a flood of messages.

Nothing is lost and nothing is counted twice when the bus fails. Each summary has an id (this
gateway's instance and the window's number), sent as its Nats-Msg-Id, and what happens next
depends on what the failure says:
- never stored (not connected, no stream, refused by JetStream): its counts go back into the
  open window, which takes its number again, so the next summary carries them under the same id;
- perhaps stored (no acknowledgement in time): it is sent again as it was, same id, same counts,
  until JetStream confirms it (a duplicate if it was stored: dropped by JetStream within its
  duplicate window, by the store after); new refusals wait in the next window meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker

from shared import subjects
from shared.bus import publish_event
from shared.messages import (
    MAX_REFUSAL_COUNTS,
    LimitName,
    RefusalCount,
    RequestsRefused,
    Who,
    utc_now,
)

log = logging.getLogger(__name__)

WallClock = Callable[[], datetime]
Delivery = Literal["stored", "not_stored", "unsure"]


def gateway_instance() -> str:
    """This gateway process's name in the summaries: its host and a random part, so that two
    gateways, or one after a restart, never share a summary id."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32].strip("-") or "gateway"
    return f"{host}-{uuid.uuid4().hex[:8]}"


class RefusalTally:
    """The refusals not yet published, per (limit, who, key name), in the open window.

    Pure but for the clock: `count` as requests are refused, `close` for the summary of the
    window (a new one opens), `reopen` when that summary was never stored."""

    def __init__(self, gateway: str, clock: WallClock = utc_now) -> None:
        self.gateway = gateway
        self._clock = clock
        self._counts: Counter[tuple[LimitName, Who, str]] = Counter()
        self._number = 0  # of the open window
        self._start: datetime | None = None  # the open window's first refusal

    def count(self, limit: LimitName, who: Who, key_name: str) -> None:
        """One request refused; `key_name` is the key's for a refusal by key, else ""."""
        if self._start is None:
            self._start = self._clock()
        self._counts[(limit, who, key_name)] += 1

    @property
    def pending(self) -> int:
        """Refusals counted and not yet in a summary."""
        return sum(self._counts.values())

    def summary_id(self, number: int) -> str:
        return f"{self.gateway}-{number}"

    def close(self) -> RequestsRefused | None:
        """The summary of the open window, which is closed (a new one opens); None when
        nothing was refused. Beyond MAX_REFUSAL_COUNTS counts, the rest stay in the new window."""
        if self._start is None or not self._counts:
            return None
        taken = sorted(self._counts.items())[:MAX_REFUSAL_COUNTS]
        summary = RequestsRefused(
            id=self.summary_id(self._number),
            gateway=self.gateway,
            window_start=self._start,
            window_end=max(self._clock(), self._start),
            counts=[
                RefusalCount(limit=limit, who=who, key_name=key_name, count=n)
                for (limit, who, key_name), n in taken
            ],
        )
        for key, _ in taken:
            del self._counts[key]
        self._number += 1
        self._start = self._start if self._counts else None
        return summary

    def reopen(self, summary: RequestsRefused) -> None:
        """Put back the counts of the last summary closed, which was never stored: the open
        window takes its place (its number and start), so its next summary has the same id."""
        if summary.id != self.summary_id(self._number - 1):
            raise ValueError(f"{summary.id} is not the last summary closed")
        for item in summary.counts:
            self._counts[(item.limit, item.who, item.key_name)] += item.count
        self._number -= 1
        self._start = summary.window_start


# Raised before the summary left this process, or JetStream's answer that it did not store it.
NEVER_STORED: tuple[type[BaseException], ...] = (
    nats.errors.OutboundBufferLimitError,  # not connected (the client buffers nothing)
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.MaxPayloadError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,  # no stream captures gateway.refused
    nats.js.errors.APIError,  # JetStream answered with an error
)


class RefusalReporter:
    """Publishes the tally's summaries on gateway.refused: `flush` every `every_s` seconds
    (`run_forever`), and once more at stop."""

    def __init__(
        self, tally: RefusalTally, broker: NatsBroker, *, every_s: float, timeout_s: float
    ) -> None:
        self.tally = tally
        self.broker = broker
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._unsure: RequestsRefused | None = None  # perhaps stored: sent again as it is
        self._lock = asyncio.Lock()

    async def flush(self) -> bool:
        """Publish what was refused since the last summary; True when nothing is left unsent."""
        async with self._lock:
            if self._unsure is not None:
                if await self._publish(self._unsure) != "stored":
                    return False
                self._unsure = None
            while (summary := self.tally.close()) is not None:
                published = await self._publish(summary)
                if published == "not_stored":
                    self.tally.reopen(summary)
                    return False
                if published == "unsure":
                    self._unsure = summary
                    return False
            return True

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.flush()

    async def stop(self) -> None:
        """The last summary; what cannot be published now is lost with the process (logged)."""
        if await self.flush():
            return
        unsent = self.tally.pending + (self._unsure.total if self._unsure else 0)
        log.warning(
            "refusals not published at shutdown",
            extra={"subject": subjects.GATEWAY_REFUSED, "refused": unsent},
        )

    async def _publish(self, summary: RequestsRefused) -> Delivery:
        try:
            await publish_event(
                self.broker,
                summary,
                subjects.GATEWAY_REFUSED,
                msg_id=summary.id,
                stream=subjects.STREAM_GATEWAY,
                ack_within_s=self.timeout_s,
            )
        except Exception as error:
            published: Delivery = "not_stored" if isinstance(error, NEVER_STORED) else "unsure"
            log.warning(
                "refusals not published; kept for the next summary",
                extra={
                    "subject": subjects.GATEWAY_REFUSED,
                    "msg_id": summary.id,
                    "refused": summary.total,
                    "published": published,
                    "reason": f"{type(error).__name__}: {error}".strip(": "),
                },
            )
            return published
        return "stored"
