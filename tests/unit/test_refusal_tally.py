"""The tally of refused requests a gateway has not published yet: windows closed into
summaries, and a summary that was never stored put back under its own id."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.refusals import RefusalTally, gateway_instance
from shared.messages import ID_PATTERN, MAX_REFUSAL_COUNTS


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_nothing_refused_closes_no_summary() -> None:
    assert RefusalTally("gw").close() is None


def test_a_window_runs_from_its_first_refusal_to_its_close_and_numbers_its_id() -> None:
    clock = WallClock()
    tally = RefusalTally("gw", clock)
    clock.advance(30)  # no refusal yet: not part of the window
    first_refusal = clock.now
    tally.count("api", "address", "")
    clock.advance(4)
    tally.count("api", "address", "")
    tally.count("feedback", "key", "crm")

    summary = tally.close()

    assert summary is not None
    assert (summary.id, summary.window_start, summary.window_end) == (
        "gw-0",
        first_refusal,
        first_refusal + timedelta(seconds=4),
    )
    assert [(c.limit, c.who, c.key_name, c.count) for c in summary.counts] == [
        ("api", "address", "", 2),
        ("feedback", "key", "crm", 1),
    ]
    assert tally.pending == 0
    tally.count("api", "address", "")
    following = tally.close()
    assert following is not None and following.id == "gw-1"


def test_a_summary_never_stored_goes_back_under_its_id_with_what_came_since() -> None:
    clock = WallClock()
    tally = RefusalTally("gw", clock)
    tally.count("api", "address", "")
    lost = tally.close()
    assert lost is not None
    clock.advance(10)
    tally.count("api", "address", "")
    tally.count("api", "key", "crm")

    tally.reopen(lost)
    again = tally.close()

    assert again is not None
    assert (again.id, again.window_start) == (lost.id, lost.window_start)
    assert again.total == 3


def test_only_the_last_summary_closed_can_be_put_back() -> None:
    tally = RefusalTally("gw")
    tally.count("api", "address", "")
    older = tally.close()
    tally.count("api", "address", "")
    assert tally.close() is not None
    assert older is not None
    with pytest.raises(ValueError, match="not the last summary closed"):
        tally.reopen(older)


def test_counts_beyond_what_a_summary_holds_wait_for_the_next_one() -> None:
    tally = RefusalTally("gw")
    for n in range(MAX_REFUSAL_COUNTS + 5):
        tally.count("api", "key", f"key-{n:04d}")

    first, second = tally.close(), tally.close()

    assert first is not None and second is not None
    assert (len(first.counts), len(second.counts)) == (MAX_REFUSAL_COUNTS, 5)
    assert second.window_start == first.window_start  # refused within the first window
    assert tally.close() is None


def test_a_gateway_instance_is_a_safe_id_and_unique_per_process() -> None:
    names = {gateway_instance() for _ in range(20)}
    assert len(names) == 20
    assert all(re.match(ID_PATTERN, f"{name}-123456") for name in names)
