"""Scaling on backlog against `airparadis up` as it runs: a burst adds infer processes, the
backlog drains, the quiet period removes them; a process stopped while it holds a batch loses
nothing, and every tweet is scored and stored once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from shared.scaling import read_status
from tests.e2e.launch import (
    Running,
    launched,
    publish,
    scored_on_the_stream,
    stored,
    tweets,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault]


def infer_processes(running: Running) -> int:
    return len(running.pids().get("infer", []))


def test_a_burst_adds_infer_processes_and_the_quiet_period_removes_them_losing_nothing(
    tmp_path: Path, registry: str
) -> None:
    total, source = 6000, "burst"
    env = {
        "AIRPARADIS_MLFLOW_TRACKING_URI": registry,
        "AIRPARADIS_ACK_WAIT_S": "5",
        "AIRPARADIS_CHECK_INTERVAL_S": "0",
        # Small batches make infer slow enough for a backlog to build on this burst.
        "AIRPARADIS_BATCH_MAX_SIZE": "4",
        "AIRPARADIS_SCALE_INFER_MIN": "1",
        "AIRPARADIS_SCALE_INFER_MAX": "3",
        "AIRPARADIS_SCALE_PREPROCESS_MAX": "1",
        "AIRPARADIS_SCALE_TARGET_BACKLOG": "50",
        "AIRPARADIS_SCALE_UP_AFTER_S": "0.5",
        "AIRPARADIS_SCALE_DOWN_AFTER_S": "4",
        "AIRPARADIS_SCALE_INTERVAL_S": "0.25",
    }
    with launched(tmp_path, env=env) as running:
        assert infer_processes(running) == 1
        asyncio.run(publish(running.nats_url, tweets(total, source)))
        wait_until(lambda: infer_processes(running) >= 2, 60, "a second infer process")
        # The first one, busy since the burst began, told to stop while it flows: it finishes
        # or hands back its batch (the supervisor restarts it, a process that exited).
        os.kill(min(running.pids()["infer"]), signal.SIGTERM)
        wait_until(lambda: stored(running, source)["rows"] >= total, 180, f"{total} rows")
        wait_until(lambda: infer_processes(running) == 1, 60, "back to one infer process")
        time.sleep(2)  # anything doubled would show now
        assert stored(running, source) == {"rows": total, "ids": total}
        assert scored_on_the_stream(running.nats_url) == total
        status = read_status(running.home)
        assert status is not None
        assert status.workers["infer"].processes == 1
        assert status.workers["infer"].added >= 1
        assert status.workers["infer"].removed == status.workers["infer"].added
        ups = [d for d in status.decisions if d.worker == "infer" and d.after > d.before]
        assert ups and all(d.backlog > 50 * d.before for d in ups)
        shown = httpx.get(f"{running.base_url}/v1/monitor?hours=1", timeout=30).json()["scaling"]
        assert shown["workers"]["infer"]["processes"] == 1
        assert len(shown["decisions"]) == len(status.decisions)
