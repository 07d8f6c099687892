"""`airparadis up` started as a user starts it, on free ports in a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.browser import CHROMIUM_ARGS, find_chromium, install_chromium
from tests.e2e.launch import Running, launched
from tests.servers import smtp_server


def training_data(airline_tweets: Path) -> tuple[Path, int]:
    """The real Sentiment140 sample when AIRPARADIS_DATA names it (a model worth looking at,
    20,000 tweets), else the committed fixture tweets (fast, tiny vocabulary)."""
    value = os.environ.get("AIRPARADIS_DATA")
    if value and Path(value).exists():
        return Path(value), 20_000
    return airline_tweets, 100


@contextmanager
def first_start(
    tmp_path: Path, airline_tweets: Path, env: dict[str, str] | None = None
) -> Iterator[Running]:
    """The platform as a first start makes it: it trains its baseline on the data."""
    data, sample = training_data(airline_tweets)
    with smtp_server() as (smtp, inbox):
        environment = {
            "AIRPARADIS_SMTP_HOST": "127.0.0.1",
            "AIRPARADIS_SMTP_PORT": str(smtp.port),
            "AIRPARADIS_ALERT_TO": "comms@airparadis.test",
            "AIRPARADIS_TRAIN_SAMPLE": str(sample),
        } | (env or {})
        with launched(tmp_path, data=data, env=environment) as running:
            running.inbox = inbox
            yield running


@pytest.fixture
def platform(tmp_path: Path, airline_tweets: Path) -> Iterator[Running]:
    """The platform as a first start makes it, open on the loopback (the default)."""
    with first_start(tmp_path, airline_tweets) as running:
        yield running


@pytest.fixture
def secured_platform(tmp_path: Path, airline_tweets: Path) -> Iterator[Running]:
    """The same with API keys required (AIRPARADIS_AUTH=on)."""
    with first_start(tmp_path, airline_tweets, {"AIRPARADIS_AUTH": "on"}) as running:
        yield running


__all__ = ["Running", "platform", "secured_platform"]


@pytest.fixture(scope="session")
def chromium() -> Path:
    path = find_chromium()
    if path is None:
        failure = install_chromium()
        path = find_chromium()
        if path is None:
            pytest.skip(f"Chromium is not installed and could not be: {failure}")
    return path


@pytest.fixture
def browser(chromium: Path) -> Iterator[object]:
    """Headless Chromium (Debian's package), driven by Playwright."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


REPO = Path(__file__).parents[2]


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """Into docs/ when AIRPARADIS_SCREENSHOTS=1 (to refresh the README), else tmp_path."""
    folder = REPO / "docs" if os.environ.get("AIRPARADIS_SCREENSHOTS") == "1" else tmp_path
    return folder / name
