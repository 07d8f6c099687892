"""When a consumer counts as stalled: messages wait and nothing moves, or its unacknowledged
messages reach its limit. Idle is not stalled."""

from __future__ import annotations

from shared.consumers import ConsumerHealth, _Progress, judge

STALL_AFTER_S = 60.0


def health(pending: int = 0, ack_pending: int = 0, limit: int = 1000) -> ConsumerHealth:
    return ConsumerHealth(
        "TWEETS",
        "infer",
        exists=True,
        pending=pending,
        ack_pending=ack_pending,
        max_ack_pending=limit,
    )


def test_a_backlog_that_moves_is_not_stalled() -> None:
    progress = _Progress()
    for second, delivered in enumerate(range(0, 1000, 100)):
        h = health(pending=500)
        judge(h, delivered, delivered, progress, now=second * 30.0, stall_after_s=STALL_AFTER_S)
        assert not h.stalled


def test_a_backlog_with_nothing_handed_out_or_acked_stalls_after_the_delay() -> None:
    progress = _Progress()
    h = health(pending=500)
    judge(h, 10, 10, progress, now=0.0, stall_after_s=STALL_AFTER_S)
    assert not h.stalled
    h = health(pending=500)
    judge(h, 10, 10, progress, now=STALL_AFTER_S + 1, stall_after_s=STALL_AFTER_S)
    assert h.stalled and "500 messages waiting" in (h.reason or "")


def test_an_idle_consumer_is_never_stalled() -> None:
    progress = _Progress()
    for now in (0.0, 1000.0, 5000.0):
        h = health()
        judge(h, 10, 10, progress, now=now, stall_after_s=STALL_AFTER_S)
        assert not h.stalled


def test_unacknowledged_messages_at_the_limit_stall_at_once() -> None:
    h = health(pending=10, ack_pending=1000, limit=1000)
    judge(h, 5, 1, _Progress(), now=0.0, stall_after_s=STALL_AFTER_S)
    assert h.stalled and "limit" in (h.reason or "")
