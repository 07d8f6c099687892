"""Token buckets and the rate limiter, on a clock the test moves."""

from __future__ import annotations

import contextlib

import pytest

from services.gateway.limits import Limit, RateLimited, RateLimiter, TokenBucket, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_bucket_allows_its_burst_at_once_then_refuses() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, 3, clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(1.0)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 4, clock)
    for _ in range(4):
        bucket.take()
    clock.now += 0.5  # one token at 2/s
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 3600
    assert bucket.tokens == 4.0


def test_the_wait_is_the_time_until_the_next_token() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, 1, clock)
    bucket.take()
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.75)
    clock.now += 0.75
    assert bucket.take() == 0.0


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, 1, clock)
    bucket.take()
    for _ in range(5):
        assert bucket.take() > 0
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_a_clock_going_back_adds_no_token() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, 1, clock)
    bucket.take()
    clock.now -= 10
    assert bucket.take() > 0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 3), (1.0, 0)])
def test_a_bucket_without_rate_or_burst_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst)


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (0.99, "1"), (1.0, "1"), (1.2, "2")])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header


def test_the_limiter_keeps_one_bucket_per_limit_and_client_and_counts_refusals() -> None:
    clock = Clock()
    limiter = RateLimiter({"api": Limit(10, 2), "feedback": Limit(1, 3)}, clock)
    for _ in range(3):
        limiter.take("feedback", "key", "crm")
    with pytest.raises(RateLimited) as refused:
        limiter.take("feedback", "key", "crm")
    assert refused.value.retry_after_s == pytest.approx(1.0)
    assert (refused.value.limit, refused.value.who) == ("feedback", "key")
    limiter.take("feedback", "key", "comms")  # another key has its own bucket
    limiter.take("api", "key", "crm")  # and another limit
    limiter.take("feedback", "address", "10.0.0.1")
    totals = limiter.totals()
    assert totals["total"] == 1 and totals["feedback"] == 1 and totals["api"] == 0
    assert totals["detail"]["feedback"] == {"by_key": 1, "by_address": 0}


def test_a_zero_rate_is_no_limit() -> None:
    limiter = RateLimiter({"api": Limit(0, 1), "feedback": Limit(1, 1)}, Clock())
    for _ in range(1000):
        limiter.take("api", "address", "127.0.0.1")
    assert limiter.totals()["total"] == 0


def test_the_limiter_forgets_the_least_recent_clients_beyond_its_size() -> None:
    clock = Clock()
    limiter = RateLimiter({"api": Limit(1, 1), "feedback": Limit(1, 1)}, clock, max_buckets=2)
    limiter.take("api", "address", "a")
    limiter.take("api", "address", "b")
    limiter.take("api", "address", "c")  # "a" is forgotten: it starts full again
    limiter.take("api", "address", "a")
    with pytest.raises(RateLimited):
        limiter.take("api", "address", "c")


def test_refusals_wait_for_the_store_by_key_name_and_never_by_address() -> None:
    limiter = RateLimiter({"api": Limit(1, 1), "feedback": Limit(1, 1)}, Clock())
    for who, identity in [("address", "203.0.113.7"), ("key", "crm")] * 3:
        with contextlib.suppress(RateLimited):
            limiter.take("api", who, identity)  # type: ignore[arg-type]

    summary = limiter.unreported.close()

    assert summary is not None
    assert {(c.who, c.key_name, c.count) for c in summary.counts} == {
        ("address", "", 2),
        ("key", "crm", 2),
    }
    assert "203.0.113.7" not in summary.model_dump_json()
    assert limiter.totals()["total"] == 4  # the figure of /monitor is kept apart
