"""Request limits: the body size, enforced before FastAPI reads the body (413 beyond it), and
the request rate per API key and per client address (token buckets, 429 beyond it)."""

from __future__ import annotations

import json
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.refusals import RefusalTally, gateway_instance
from shared.messages import LimitName, Who
from shared.settings import Settings

Clock = Callable[[], float]


class TokenBucket:
    """`burst` tokens at most, refilled at `rate_per_s`; a request takes one.

    Pure but for the clock, which is injectable: a bucket is full when made, and refills by
    the time elapsed on its clock since it was last asked."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(
                f"a token bucket needs a rate > 0 and a burst >= 1, got {rate_per_s}/s and {burst}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._at)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._at = now

    def take(self) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be (and
        nothing is taken)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


# Buckets kept at most; the least recently used go first (a forgotten client starts full).
MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class Limit:
    rate_per_s: float  # 0: no limit
    burst: int

    def describe(self) -> str:
        return f"{self.rate_per_s:g}/s, burst {self.burst}"


class RateLimited(Exception):
    """A request over its limit: retry after `retry_after_s`."""

    def __init__(self, limit: LimitName, who: Who, retry_after_s: float, rule: Limit) -> None:
        super().__init__(f"{limit} limit of this {who} reached ({rule.describe()})")
        self.limit, self.who, self.retry_after_s, self.rule = limit, who, retry_after_s, rule


class RateLimiter:
    """One token bucket per limit (api, feedback), per API key and per client address; the
    count of requests refused since the start (/monitor); and those not yet published for the
    store (`unreported`, services/gateway/refusals.py), by key name but never by address."""

    def __init__(
        self,
        limits: dict[LimitName, Limit],
        clock: Clock = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[tuple[LimitName, Who, str], TokenBucket] = OrderedDict()
        self.refused: Counter[tuple[LimitName, Who]] = Counter()
        self.unreported = RefusalTally(gateway_instance())
        self.since = datetime.now(UTC)

    @classmethod
    def of(cls, settings: Settings, clock: Clock = time.monotonic) -> RateLimiter:
        return cls(
            {
                "api": Limit(settings.rate_limit_per_s, settings.rate_limit_burst),
                "feedback": Limit(settings.feedback_rate_per_s, settings.feedback_rate_burst),
            },
            clock,
        )

    def take(self, limit: LimitName, who: Who, identity: str) -> None:
        """Count one request of `identity` (a key's name, an address) against `limit`;
        RateLimited when its bucket is empty."""
        rule = self.limits[limit]
        if rule.rate_per_s <= 0:
            return
        slot = (limit, who, identity)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = TokenBucket(rule.rate_per_s, rule.burst, self._clock)
            while len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(slot)
        wait = bucket.take()
        if wait > 0:
            self.refused[(limit, who)] += 1
            # An address is personal data: what leaves the process names a key or no one.
            self.unreported.count(limit, who, identity if who == "key" else "")
            raise RateLimited(limit, who, wait, rule)

    def totals(self) -> dict[str, Any]:
        """The refusals since the start, per limit and in all."""
        per_limit = {
            limit: {
                "by_key": self.refused[(limit, "key")],
                "by_address": self.refused[(limit, "address")],
            }
            for limit in self.limits
        }
        return {
            "since": self.since,
            "total": sum(self.refused.values()),
            **{limit: sum(counts.values()) for limit, counts in per_limit.items()},
            "detail": per_limit,
        }


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds: rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: a declared Content-Length over the limit is refused at once; a body
    sent without one is counted as it arrives and refused once it goes over."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = {
            "error": "request_too_large",
            "reason": f"the request body is over the {self.max_bytes:,}-byte limit",
        }
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
