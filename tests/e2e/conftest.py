"""`airparadis up` started as a user starts it, on free ports in a temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.nats_server import free_port
from tests.servers import Inbox, smtp_server

STARTUP_TIMEOUT_S = 180


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    base_url: str
    home: Path
    nats_port: int
    inbox: Inbox
    log: Path


def wait_ready(running: Running) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(f"airparadis up exited early:\n{running.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{running.base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready in {STARTUP_TIMEOUT_S} s:\n{running.log.read_text()[-3000:]}")


def training_data(airline_tweets: Path) -> tuple[Path, int]:
    """The real Sentiment140 sample when AIRPARADIS_DATA names it (a model worth looking at,
    20,000 tweets), else the committed fixture tweets (fast, tiny vocabulary)."""
    value = os.environ.get("AIRPARADIS_DATA")
    if value and Path(value).exists():
        return Path(value), 20_000
    return airline_tweets, 100


@pytest.fixture
def platform(tmp_path: Path, airline_tweets: Path) -> Iterator[Running]:
    http_port, nats_port = free_port(), free_port()
    data, sample = training_data(airline_tweets)
    with smtp_server() as (smtp, inbox):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
            "AIRPARADIS_HOME": str(tmp_path / "home"),
            "AIRPARADIS_HTTP_PORT": str(http_port),
            "AIRPARADIS_NATS_PORT": str(nats_port),
            "AIRPARADIS_SMTP_HOST": "127.0.0.1",
            "AIRPARADIS_SMTP_PORT": str(smtp.port),
            "AIRPARADIS_ALERT_TO": "comms@airparadis.test",
            "AIRPARADIS_TRAIN_SAMPLE": str(sample),
        }
        log = tmp_path / "up.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-X",
                    "faulthandler",
                    "-m",
                    "airparadis",
                    "up",
                    "--data",
                    str(data),
                ],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running = Running(
            process, f"http://127.0.0.1:{http_port}", tmp_path / "home", nats_port, inbox, log
        )
        try:
            wait_ready(running)
            yield running
        finally:
            if process.poll() is None:  # stop it as a user would, then insist
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
