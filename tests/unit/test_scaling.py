"""The scaling rule of `airparadis up` on a fake clock: backlog samples in, decisions out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from airparadis.scaling import Decision, ScalePolicy, ScaleTimer, decide, policies
from shared.settings import Settings

POLICY = ScalePolicy(minimum=1, maximum=3, target_backlog=100, up_after_s=5, down_after_s=30)


def run(
    samples: list[tuple[float, int]], processes: int = 1, policy: ScalePolicy = POLICY
) -> list[tuple[float, int]]:
    """Feed (time, backlog) samples; apply every decision; (time, processes after) of each."""
    timer, made = ScaleTimer(), []
    for now, backlog in samples:
        decision = decide(policy, timer, processes, backlog, now)
        if decision is not None:
            processes = decision.after
            made.append((now, processes))
    return made


def test_a_backlog_above_the_target_for_the_up_period_adds_one_process() -> None:
    assert run([(t, 500) for t in range(0, 6)]) == [(5, 2)]


def test_a_short_spike_adds_nothing() -> None:
    assert run([(0, 500), (1, 500), (2, 500), (3, 10), (4, 500), (5, 500)]) == []


def test_a_lasting_backlog_adds_one_process_per_period_up_to_the_maximum() -> None:
    assert run([(t, 10_000) for t in range(0, 40)]) == [(5, 2), (11, 3)]


def test_the_target_is_per_process() -> None:
    # 250 waiting for 3 processes is 83 each: under the target, nothing added.
    assert run([(t, 250) for t in range(0, 20)], processes=3) == []
    # 250 for 2 is 125 each: one more.
    assert run([(t, 250) for t in range(0, 20)], processes=2) == [(5, 3)]


def test_a_quiet_backlog_removes_one_process_per_quiet_period_down_to_the_minimum() -> None:
    assert run([(t, 0) for t in range(0, 100)], processes=3) == [(30, 2), (61, 1)]


def test_a_backlog_the_others_could_not_take_under_half_the_target_keeps_the_process() -> None:
    # 60 for 1 process after removal is above half the target (50): stays at 2.
    assert run([(t, 60) for t in range(0, 100)], processes=2) == []
    # 40 is under: one removed after the quiet period.
    assert run([(t, 40) for t in range(0, 100)], processes=2) == [(30, 1)]


def test_traffic_during_the_quiet_period_starts_it_again() -> None:
    samples = [(t, 0) for t in range(0, 20)] + [(20, 90)] + [(t, 0) for t in range(21, 60)]
    assert run(samples, processes=2) == [(51, 1)]


def test_never_under_the_minimum_nor_over_the_maximum() -> None:
    assert decide(POLICY, ScaleTimer(), 0, 0, 0.0) == Decision(1, "under the minimum 1")
    assert decide(POLICY, ScaleTimer(), 5, 10**6, 0.0) == Decision(3, "over the maximum 3")
    assert run([(t, 0) for t in range(0, 100)], processes=1) == []


def test_a_minimum_of_zero_starts_one_at_the_first_message_and_stops_it_only_when_idle() -> None:
    policy = ScalePolicy(minimum=0, maximum=2, target_backlog=100, up_after_s=5, down_after_s=10)
    assert run([(0, 1)], processes=0, policy=policy) == [(0, 1)]
    assert run([(t, 1) for t in range(0, 30)], processes=1, policy=policy) == []
    assert run([(t, 0) for t in range(0, 30)], processes=1, policy=policy) == [(10, 0)]


def test_infer_replicas_is_a_fixed_count() -> None:
    fixed = policies(Settings(infer_replicas=3, scale_infer_min=1, scale_infer_max=2))["infer"]
    assert (fixed.minimum, fixed.maximum, fixed.fixed) == (3, 3, True)
    scaled = policies(Settings(scale_infer_min=1, scale_infer_max=4))["infer"]
    assert (scaled.minimum, scaled.maximum, scaled.fixed) == (1, 4, False)


def test_a_minimum_above_the_maximum_is_refused() -> None:
    with pytest.raises(ValidationError, match="scale_infer_min"):
        Settings(scale_infer_min=3, scale_infer_max=2)
