"""`airparadis up` as a user runs it: a subprocess, the HTTP API, an SMTP server, Ctrl-C."""

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

from shared.nats_server import free_port, port_open
from shared.settings import Settings
from shared.storage import ChdbStore
from tests.servers import Inbox, json_attachment, smtp_server

pytestmark = pytest.mark.e2e

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


@pytest.fixture
def platform(tmp_path: Path, airline_tweets: Path) -> Iterator[Running]:
    http_port, nats_port = free_port(), free_port()
    with smtp_server() as (smtp, inbox):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
            "AIRPARADIS_HOME": str(tmp_path / "home"),
            "AIRPARADIS_HTTP_PORT": str(http_port),
            "AIRPARADIS_NATS_PORT": str(nats_port),
            "AIRPARADIS_SMTP_HOST": "127.0.0.1",
            "AIRPARADIS_SMTP_PORT": str(smtp.port),
            "AIRPARADIS_ALERT_TO": "comms@airparadis.test",
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
                    str(airline_tweets),
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
            if process.poll() is None:
                process.kill()
                process.wait()


def test_up_serves_predictions_stores_them_and_emails_on_reports(platform: Running) -> None:
    client = httpx.Client(base_url=platform.base_url, timeout=15)

    prediction = client.post("/v1/predict", json={"text": "Loved the crew, great flight!"})
    assert prediction.status_code == 200, prediction.text
    body = prediction.json()
    assert body["label"] in {"positive", "negative"}
    assert 0 <= body["probability"] <= 1
    assert body["model_version"] == "1"

    bad = client.post("/v1/predict", json={"text": "   "})
    assert bad.status_code == 422 and "empty" in bad.json()["reason"]

    for _ in range(3):
        reported = client.post(
            "/v1/feedback", json={"prediction_id": body["id"], "correct_label": "negative"}
        )
        assert reported.status_code == 202, reported.text
    deadline = time.monotonic() + 30
    while not platform.inbox.messages and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(platform.inbox.messages) == 1
    alert = json_attachment(platform.inbox.messages[0])
    assert alert["details"]["reports"][0]["prediction_id"] == body["id"]

    platform.process.send_signal(signal.SIGINT)
    assert platform.process.wait(timeout=30) == 0, platform.log.read_text()[-3000:]
    assert not port_open("127.0.0.1", platform.nats_port), "nats-server left running"

    store = ChdbStore(Settings(home=platform.home).chdb_path)
    try:
        rows = store.query(
            "SELECT text, model_version FROM predictions FINAL WHERE id = {id:String}",
            {"id": body["id"]},
        )
    finally:
        store.close()
    assert rows == [{"text": "Loved the crew, great flight!", "model_version": "1"}]
