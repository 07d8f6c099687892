"""`airparadis train simple`, then `airparadis models promote --alias challenger` and
`airparadis models promote` while `airparadis up` runs: the challenger is scored in shadow and
compared on /monitor and by `models compare --live`, then served without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Running, screenshot_path

pytestmark = pytest.mark.e2e

TEXTS = [
    "Lovely crew on the flight to Lisbon, thank you",
    "Lost my bag again and nobody answers",
    "Seats were comfy and we landed early",
    "Four hours on the tarmac with no water",
]


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


def shadow_traffic(client: httpx.Client, platform: Running, challenger: str) -> dict[str, Any]:
    """Tweets until the monitor compares the challenger with the champion, three of them
    reported with a correct label; the comparison."""
    deadline = time.monotonic() + 60
    reported = 0
    while time.monotonic() < deadline:
        answered = client.post("/v1/predict", json={"texts": TEXTS}).json()["predictions"]
        for prediction in answered[: max(0, 3 - reported)]:
            wrong = "negative" if prediction["label"] == "positive" else "positive"
            body = {"prediction_id": prediction["id"], "correct_label": wrong}
            assert client.post("/v1/feedback", json=body).status_code in (200, 201, 202)
            reported += 1
        figures = client.get("/v1/monitor", params={"hours": 1}).json()
        rows = [c for c in figures["challengers"] if c["challenger"] == challenger]
        if rows and rows[0]["reported"] >= 3 and rows[0]["tweets"] >= 2 * len(TEXTS):
            return dict(rows[0])
        time.sleep(0.5)
    raise AssertionError(f"no comparison of v{challenger} on /monitor within 60 s: {figures}")


def test_train_then_promote_swaps_the_served_model_live(
    platform: Running, airline_tweets: object, browser: object, tmp_path: Path
) -> None:
    client = httpx.Client(base_url=platform.base_url, timeout=15)
    assert client.post("/v1/predict", json={"text": "nice"}).json()["model_version"] == "1"

    trained = cli(platform, "train", "simple", "--data", str(airline_tweets), "--smoke")
    assert trained.returncode == 0, trained.stderr[-2000:]

    # First the challenger: scored in shadow on the same tweets, never answering.
    challenger = cli(platform, "models", "promote", "2", "--alias", "challenger")
    assert challenger.returncode == 0, challenger.stderr[-2000:]
    compared = shadow_traffic(client, platform, "2")
    assert client.post("/v1/predict", json={"text": "nice"}).json()["model_version"] == "1"
    live = cli(platform, "models", "compare", "--live", "--hours", "1")
    assert live.returncode == 0, live.stderr[-2000:]
    assert "v2" in live.stdout and f"{compared['tweets']:,}" in live.stdout
    page = browser.new_page(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page.goto(platform.base_url + "/monitor?hours=1")
    page.wait_for_function("document.querySelector('#updated').textContent.length > 0")
    cells = page.eval_on_selector_all(
        "#challengers tr:first-child td", "t => t.map(c => c.textContent)"
    )
    assert cells[:2] == ["v2", "v1"], cells
    assert cells[6].endswith(f"of {compared['reported']}") and compared["reported"] >= 3
    page.locator("#challengers").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path(tmp_path, "monitor-challenger.png")), full_page=True)

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
