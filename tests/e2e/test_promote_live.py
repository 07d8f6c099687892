"""`airparadis train simple` then `airparadis models promote` while `airparadis up` runs:
the running platform serves the new version without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.conftest import Running

pytestmark = pytest.mark.e2e


def cli(platform: Running, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(platform.home),
        "AIRPARADIS_NATS_PORT": str(platform.nats_port),
    }
    return subprocess.run(
        [sys.executable, "-m", "airparadis", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_then_promote_swaps_the_served_model_live(
    platform: Running, airline_tweets: object
) -> None:
    client = httpx.Client(base_url=platform.base_url, timeout=15)
    assert client.post("/v1/predict", json={"text": "nice"}).json()["model_version"] == "1"

    trained = cli(platform, "train", "simple", "--data", str(airline_tweets), "--smoke")
    assert trained.returncode == 0, trained.stderr[-2000:]
    promoted = cli(platform, "models", "promote", "2", "--force")
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert "announced" in promoted.stdout + promoted.stderr

    deadline = time.monotonic() + 30
    version = "1"
    while version != "2" and time.monotonic() < deadline:
        version = client.post("/v1/predict", json={"text": "nice"}).json()["model_version"]
        time.sleep(0.3)
    assert version == "2"
    ready = client.get("/readyz").json()
    assert ready["checks"]["model"]["model_version"] == "2"
