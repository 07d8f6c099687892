"""The bus's AsyncAPI document lists every subject of shared/subjects.py with the schema of its
messages, the committed docs/asyncapi.json is the current one, and the gateway serves it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from airparadis.cli import app as cli
from services.gateway.routes import docs
from shared import subjects
from shared.contract import document, document_text

COMMITTED = Path(__file__).parents[2] / "docs" / "asyncapi.json"
NOT_SUBJECTS = ("STREAM", "DURABLE_", "KV_", "_QUEUE")


def subjects_of_the_bus() -> dict[str, str]:
    """Every subject constant of shared/subjects.py (streams, durables, queues, buckets left
    out), as the address a channel has: prefixes become wildcards."""
    found = {}
    for name, value in vars(subjects).items():
        if not name.isupper() or not isinstance(value, str) or any(p in name for p in NOT_SUBJECTS):
            continue
        if name == "STREAMS":
            continue
        found[name] = f"{value}>" if value.endswith(".") else value
    found["REPLY_PREFIX"] = f"{subjects.REPLY_PREFIX}.>"
    return found


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return document()


def test_every_subject_is_a_channel_with_a_payload_schema(contract: dict[str, Any]) -> None:
    channels = {channel["address"]: channel for channel in contract["channels"].values()}
    expected = subjects_of_the_bus()
    assert set(expected.values()) == set(channels), "a subject without a channel, or the reverse"
    messages = contract["components"]["messages"]
    schemas = contract["components"]["schemas"]
    for name, address in expected.items():
        channel = channels[address]
        assert channel["description"], f"{name} has no description"
        for reference in channel["messages"].values():
            message = messages[unquote(reference["$ref"].rsplit("/", 1)[1])]
            schema = schemas[unquote(message["payload"]["$ref"].rsplit("/", 1)[1])]
            assert schema["type"] == "object", name


def test_a_tweet_s_schema_is_the_one_the_workers_check(contract: dict[str, Any]) -> None:
    tweet = contract["components"]["schemas"]["TweetSubmitted"]
    assert tweet["required"] == ["text"]
    assert tweet["properties"]["text"]["maxLength"] == 1000
    assert "pattern" in tweet["properties"]["text"]  # at least one visible character


def test_the_committed_document_is_the_current_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == document_text(), (
        "docs/asyncapi.json is out of date: run `airparadis asyncapi`"
    )
    result = CliRunner().invoke(cli, ["asyncapi", "--check", "--out", str(COMMITTED)])
    assert result.exit_code == 0, result.output


def test_the_check_fails_on_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.json"
    stale.write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(cli, ["asyncapi", "--check", "--out", str(stale)])
    assert result.exit_code == 1 and "out of date" in result.output


def test_the_gateway_serves_it() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    docs.install(app)

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/asyncapi")

    served = asyncio.run(fetch())
    assert served.status_code == 200
    assert served.json()["asyncapi"] == "3.0.0"
    assert {c["address"] for c in served.json()["channels"].values()} >= {"tweets.submitted"}
