"""Fixtures shared by every test tier: settings in a temporary home, the data path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.registry import Registry
from shared.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings isolated from the developer's environment and .env, rooted in tmp_path."""
    for key in list(os.environ):
        if key.startswith("AIRPARADIS_") and key != "AIRPARADIS_DATA":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return Settings(home=tmp_path / "home", max_deliveries=3)


@pytest.fixture
def sentiment140_sample() -> Path:
    """The Sentiment140 sample named by AIRPARADIS_DATA; tests that need it skip without it."""
    value = os.environ.get("AIRPARADIS_DATA")
    if not value:
        pytest.skip("AIRPARADIS_DATA is not set (point it at sentiment140/sample-100k.csv.gz)")
    path = Path(value)
    if not path.exists():
        pytest.skip(f"AIRPARADIS_DATA={path} does not exist")
    return path


@pytest.fixture
def airline_tweets() -> Path:
    return FIXTURES / "airline_tweets.csv"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow registry (SQLite) whose champion was trained on the fixture tweets."""
    from tests.integration.registry import train_fixture_model

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    settings = Settings(home=folder)
    version = train_fixture_model(uri, settings, FIXTURES / "airline_tweets.csv")
    Registry(uri, settings.model_name).promote(version)
    return uri
