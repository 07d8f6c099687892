"""`airparadis feedback export` against the real platform: tweets scored and reported through
the gateway, the export run as a user runs it (another process, through the store worker that
holds the chDB folder)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from airparadis.cli import app
from airparadis.wiring import Platform
from shared.settings import Settings
from tests.integration.platform import gateway_client, rows_in, started
from tests.servers import eventually
from training.data import load_sentiment140

pytestmark = pytest.mark.integration

TWEETS = {
    "sarcasm": "Great, another three hours on the tarmac. Thanks @AirParadis",
    "praise": "Crew on AP214 were lovely, write to me at jane.doe@example.com",
    "no-label": "Flight was ok I guess",
    "twice": "Lost my bag again, call me on +33 6 12 34 56 78",
    "unreported": "Landed early, nice",
}


@pytest.fixture
async def platform(platform_settings: Settings) -> AsyncIterator[Platform]:
    # Five reports from one address at once: no report rate limit here.
    settings = platform_settings.model_copy(update={"feedback_rate_per_s": 0.0})
    async with started(settings) as running:
        yield running


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(platform) as c:
        yield c


async def feedback_export(settings: Settings, out: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(settings.home),
        "AIRPARADIS_NATS_URL": str(settings.nats_url),
    }
    command = ["--log-format", "text", "feedback", "export", "--out", str(out)]
    # In a thread: this event loop runs the store worker that must answer the command.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "airparadis", *command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def report(client: httpx.AsyncClient, prediction_id: str, label: str | None) -> None:
    body: dict[str, str] = {"prediction_id": prediction_id}
    if label is not None:
        body["correct_label"] = label
    answer = await client.post("/v1/feedback?wait_alert_ms=0", json=body)
    assert answer.status_code == 202, answer.text


async def test_the_export_holds_each_reported_prediction_with_a_label_once(
    client: httpx.AsyncClient, platform: Platform, platform_settings: Settings, tmp_path: Path
) -> None:
    scored = {}
    for name, text in TWEETS.items():
        answer = await client.post("/v1/predict", json={"text": text})
        assert answer.status_code == 200, answer.text
        scored[name] = answer.json()["id"]
    await eventually(rows_in(platform, "predictions", len(TWEETS)), what="the predictions")
    out = tmp_path / "reports.csv"

    before = await feedback_export(platform_settings, out)

    assert before.returncode == 1
    assert "no report with a correct label yet" in " ".join(before.stderr.split())
    assert not out.exists()

    await report(client, scored["sarcasm"], "negative")
    await report(client, scored["praise"], "positive")
    await report(client, scored["no-label"], None)
    await report(client, scored["twice"], "positive")
    await eventually(rows_in(platform, "feedback", 4), what="the first reports")
    await report(client, scored["twice"], "negative")  # on second thought: the one that counts
    await eventually(rows_in(platform, "feedback", 5), what="the second report")

    done = await feedback_export(platform_settings, out)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(out)
    said = " ".join(done.stderr.split())
    assert "wrote 3 training rows" in said and "from 4 reports with a correct label" in said
    assert "1 earlier reports of a prediction reported again left out" in said
    assert "the store worker of the running platform" in said
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == [
        "target",
        "text",
        "reported_at",
        "model_version",
        "prediction_id",
    ]
    assert sorted(zip(written["prediction_id"], written["target"], strict=True)) == sorted(
        [(scored["sarcasm"], "0"), (scored["praise"], "4"), (scored["twice"], "0")]
    )
    texts = dict(zip(written["prediction_id"], written["text"], strict=True))
    # As the platform stored them: scrubbed (AIRPARADIS_TEXT_STORAGE=scrubbed, the default).
    assert texts[scored["sarcasm"]] == TWEETS["sarcasm"]
    assert texts[scored["praise"]] == "Crew on AP214 were lovely, write to me at <email>"
    assert texts[scored["twice"]] == "Lost my bag again, call me on <phone>"
    assert set(written["model_version"]) == {"1"}
    assert written["reported_at"].is_monotonic_increasing
    # What `train --extra-data` reads.
    frame = load_sentiment140(out)
    assert sorted(frame["label"]) == [0, 0, 1]


def test_without_a_platform_the_export_says_where_it_looked(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    result = CliRunner().invoke(
        app,
        ["--log-level", "WARNING", "feedback", "export", "--home", str(home)],
        env={"AIRPARADIS_CLICKHOUSE_URL": ""},
    )

    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "Nothing exported: no platform data in" in said and "--home" in said
    assert not home.exists()
