"""The supervisor's side of scaling with real child processes (stand-ins that sleep, so no
bus is needed): a decision starts or stops processes, a process scaled down gets SIGTERM and is
not restarted, and the status file /monitor reads says what happened."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from airparadis.scaling import ScalePolicy
from airparadis.supervisor import Child, Pool, Supervisor
from shared.scaling import read_status
from shared.settings import Settings

pytestmark = pytest.mark.integration

# A process that exits 0 on SIGTERM, as a worker does once it has handed back its batch.
SLEEPER = [
    sys.executable,
    "-c",
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "time.sleep(60)",
]


def alive(children: list[Child]) -> int:
    return sum(1 for c in children if c.process is not None and c.process.poll() is None)


def test_decisions_start_and_stop_processes_and_the_status_file_counts_them(
    tmp_path: Path,
) -> None:
    policy = ScalePolicy(minimum=1, maximum=3, target_backlog=10, up_after_s=0, down_after_s=0)
    first = Child("infer", SLEEPER, worker="infer")
    supervisor = Supervisor(
        Settings(home=tmp_path, scale_target_backlog=10),
        [first],
        env={},
        pools={"infer": Pool("infer", policy, SLEEPER)},
    )
    try:
        supervisor._start(first)
        for now in (0.0, 1.0, 2.0, 3.0):  # a lasting backlog: up to the maximum, no further
            supervisor._scale({"infer": 1000}, now=now)
        infer = supervisor.processes_of("infer")
        assert [c.name for c in infer] == ["infer", "infer-2", "infer-3"]
        assert alive(infer) == 3
        removed = infer[-1]
        for now in (4.0, 5.0, 6.0):  # nothing waits: down to the minimum, no further
            supervisor._scale({"infer": 0}, now=now)
        assert [c.name for c in supervisor.processes_of("infer")] == ["infer"]
        deadline = time.monotonic() + 10
        while supervisor.retiring and time.monotonic() < deadline:
            supervisor._reap()
            time.sleep(0.05)
        assert not supervisor.retiring
        # Its SIGTERM (it may come before the stand-in has set its handler).
        assert removed.process is not None
        assert removed.process.returncode in (0, -signal.SIGTERM)
        status = read_status(tmp_path)
        assert status is not None
        worker = status.workers["infer"]
        assert (worker.processes, worker.added, worker.removed, worker.backlog) == (1, 2, 2, 0)
        assert [(d.before, d.after, d.backlog) for d in status.decisions] == [
            (1, 2, 1000),
            (2, 3, 1000),
            (3, 2, 0),
            (2, 1, 0),
        ]
        supervisor._scale({}, now=7.0)  # the bus away: no figures, no decision
        assert len(supervisor.processes_of("infer")) == 1
        assert read_status(tmp_path).workers["infer"].backlog is None  # type: ignore[union-attr]
    finally:
        supervisor._stop_children()
