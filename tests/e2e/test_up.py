"""`airparadis up` as a user runs it: a subprocess, the HTTP API, an SMTP server, Ctrl-C."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from shared.nats_server import port_open
from shared.settings import Settings
from shared.storage import ChdbStore
from tests.e2e.conftest import Running
from tests.servers import json_attachment

pytestmark = pytest.mark.e2e


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

    reported_ids = [body["id"]]
    for text in ("Nice seats", "Good coffee"):
        other = client.post("/v1/predict", json={"text": text})
        assert other.status_code == 200, other.text
        reported_ids.append(other.json()["id"])
    for prediction_id in reported_ids:  # three predictions: one report each counts
        reported = client.post(
            "/v1/feedback", json={"prediction_id": prediction_id, "correct_label": "negative"}
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
    # The embedded nats-server ran with the safe default: every write on disk before its ack.
    durability = Settings(home=platform.home).nats_store_dir / "airparadis-durability.conf"
    assert "sync_interval: always" in durability.read_text(encoding="utf-8")
