"""API keys, scopes and rate limits on the real gateway and pipeline (nats-server, the workers
in this process, chDB), with keys required (AIRPARADIS_AUTH=on); and `airparadis keys`, both
on a folder of its own and through the store worker of a running platform."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from airparadis.cli import app as cli
from airparadis.wiring import Platform, build_platform
from shared.keys import KeyRing
from shared.settings import Settings
from shared.storage import ChdbStore
from tests.integration.platform import gateway_client, rows_in, started
from tests.servers import eventually

pytestmark = pytest.mark.integration

Bearer = Callable[[str], dict[str, str]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured_settings(platform_settings: Settings) -> Settings:
    return platform_settings.model_copy(update={"auth": "on"})


@pytest.fixture
async def platform(secured_settings: Settings) -> AsyncIterator[Platform]:
    async with started(secured_settings) as running:
        yield running


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(platform) as c:
        yield c


@pytest.fixture
def keys(platform: Platform) -> KeyRing:
    assert platform.store is not None
    return KeyRing(platform.store)


async def test_without_a_valid_key_the_api_answers_401_with_a_challenge(
    client: httpx.AsyncClient,
) -> None:
    calls = [
        client.post("/v1/predict", json={"text": "hello"}),
        client.post("/v1/explain", json={"text": "hello"}),
        client.post("/v1/feedback", json={"prediction_id": "p1"}),
        client.get("/v1/predictions/p1"),
        client.get("/v1/monitor"),
        client.get("/v1/limits"),
        client.get("/v1/keys"),
        client.get("/v1/whoami"),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 401, (response.request.url, response.text)
        assert response.json()["error"] == "missing_key"
        assert "Authorization: Bearer" in response.json()["reason"]
        assert response.headers["www-authenticate"] == 'Bearer realm="airparadis"'
    forged = "ap_0123456789ab_" + "x" * 43
    for headers in (bearer(forged), {"X-API-Key": forged}, bearer("not-a-key")):
        response = await client.post("/v1/predict", json={"text": "hello"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_key"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # The pages and the health checks stay public.
    for path in ("/", "/monitor", "/healthz"):
        assert (await client.get(path)).status_code == 200


async def test_a_key_without_the_scope_gets_403_naming_the_scope(
    client: httpx.AsyncClient, keys: KeyRing
) -> None:
    monitor_only = keys.create("dashboard", ["monitor"]).secret
    response = await client.post(
        "/v1/predict", json={"text": "hello"}, headers=bearer(monitor_only)
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert "'predict'" in response.json()["reason"]
    assert 'scope="predict"' in response.headers["www-authenticate"]
    assert (await client.get("/v1/monitor", headers=bearer(monitor_only))).status_code == 200
    # admin manages keys; it does not score tweets
    admin = keys.create("ops", ["admin"]).secret
    assert (
        await client.post("/v1/explain", json={"text": "x"}, headers=bearer(admin))
    ).status_code == 403


async def test_a_key_scores_and_reports_and_the_rows_record_its_name(
    client: httpx.AsyncClient, keys: KeyRing, platform: Platform
) -> None:
    crm = keys.create("crm", ["predict", "feedback"]).secret
    predicted = await client.post(
        "/v1/predict", json={"text": "Lost my bag again"}, headers=bearer(crm)
    )
    assert predicted.status_code == 200, predicted.text
    prediction_id = predicted.json()["id"]
    reported = await client.post(
        "/v1/feedback",
        json={"prediction_id": prediction_id, "correct_label": "negative"},
        headers={"X-API-Key": crm},
    )
    assert reported.status_code == 202, reported.text
    await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")
    await eventually(rows_in(platform, "feedback", 1), what="the stored report")
    assert platform.store is not None
    assert platform.store.query("SELECT id, key_name FROM predictions FINAL") == [
        {"id": prediction_id, "key_name": "crm"}
    ]
    assert platform.store.query("SELECT prediction_id, key_name FROM feedback FINAL") == [
        {"prediction_id": prediction_id, "key_name": "crm"}
    ]
    [listed] = keys.list()
    assert listed.name == "crm" and listed.last_used_at is not None


async def test_the_fourth_report_in_a_second_gets_429_with_retry_after(
    client: httpx.AsyncClient, keys: KeyRing
) -> None:
    crm = keys.create("crm", ["predict", "feedback"]).secret
    monitor = keys.create("dashboard", ["monitor"]).secret
    prediction = (
        await client.post("/v1/predict", json={"text": "nice"}, headers=bearer(crm))
    ).json()
    started = time.monotonic()
    answers = [  # answered at once, not after waiting for an alert (wait_alert_ms=0)
        await client.post(
            "/v1/feedback?wait_alert_ms=0",
            json={"prediction_id": prediction["id"]},
            headers=bearer(crm),
        )
        for _ in range(4)
    ]
    assert time.monotonic() - started < 1.0, "the four reports must fall within a second"
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    refused = answers[3]
    assert refused.json()["error"] == "rate_limited"
    assert "reports" in refused.json()["reason"] and "retry in" in refused.json()["reason"]
    assert int(refused.headers["retry-after"]) >= 1
    limits = (await client.get("/v1/limits", headers=bearer(monitor))).json()
    assert limits["limits"]["feedback"] == {"rate_per_s": 1.0, "burst": 3}
    assert limits["rate_limited"]["feedback"] == 1
    figures = (await client.get("/v1/monitor", headers=bearer(monitor))).json()
    assert figures["rate_limited"]["total"] == 1


async def test_a_revoked_key_is_refused_from_the_next_request(
    client: httpx.AsyncClient, keys: KeyRing
) -> None:
    crm = keys.create("crm", ["predict"]).secret
    assert (await client.get("/v1/whoami", headers=bearer(crm))).json()["key"]["name"] == "crm"
    keys.revoke("crm")
    answer = await client.get("/v1/whoami", headers=bearer(crm))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_key"


async def test_an_admin_key_creates_lists_and_revokes_keys_over_http(
    client: httpx.AsyncClient, keys: KeyRing
) -> None:
    admin = bearer(keys.create("ops", ["admin"]).secret)
    created = await client.post(
        "/v1/keys", json={"name": "comms", "scopes": ["predict", "feedback"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    comms = created.json()
    assert comms["name"] == "comms" and comms["scopes"] == ["predict", "feedback"]
    assert (await client.get("/v1/whoami", headers=bearer(comms["key"]))).status_code == 200
    again = await client.post(
        "/v1/keys", json={"name": "comms", "scopes": ["predict"]}, headers=admin
    )
    assert again.status_code == 409 and again.json()["error"] == "name_taken"
    listed = (await client.get("/v1/keys", headers=admin)).json()
    assert [k["name"] for k in listed] == ["ops", "comms"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    revoked = await client.delete(f"/v1/keys/{comms['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await client.get("/v1/whoami", headers=bearer(comms["key"]))).status_code == 401
    missing = await client.delete("/v1/keys/nobody", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_key"


async def test_the_openapi_document_says_which_operations_need_a_key(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    predict = document["paths"]["/v1/predict"]["post"]
    assert predict["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "scope `predict`" in predict["description"]
    assert {"401", "403", "429"} <= set(predict["responses"])
    assert "security" not in document["paths"]["/healthz"]["get"]


async def test_with_keys_off_on_the_loopback_the_api_is_open_and_hands_out_no_keys(
    platform_settings: Settings,
) -> None:
    platform = build_platform(platform_settings)  # the default on 127.0.0.1: off
    await platform.start()
    try:
        assert platform.gateway is not None
        transport = httpx.ASGITransport(app=platform.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            assert (await client.get("/v1/whoami")).json() == {"auth": False, "key": None}
            assert (await client.get("/v1/keys")).status_code == 404
            document = (await client.get("/openapi.json")).json()
            assert "securitySchemes" not in document.get("components", {})
    finally:
        await platform.stop()


def test_keys_commands_create_list_and_revoke_in_a_home_of_their_own(
    settings: Settings, tmp_path: Path
) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "keys-home")]
    created = runner.invoke(
        cli, ["keys", "create", "--name", "crm", "--scope", "predict", "--scope", "feedback", *home]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ap_")
    listed = runner.invoke(cli, ["keys", "list", *home])
    assert listed.exit_code == 0 and "crm" in listed.stdout and "predict, feedback" in listed.stdout
    assert secret not in listed.stdout
    taken = runner.invoke(cli, ["keys", "create", "--name", "crm", "--scope", "predict", *home])
    assert taken.exit_code == 1 and "names one key for good" in taken.output
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--scope", "root", *home])
    assert bad.exit_code == 1 and "unknown scope" in bad.output
    revoked = runner.invoke(cli, ["keys", "revoke", "crm", *home])
    assert revoked.exit_code == 0, revoked.output
    unknown = runner.invoke(cli, ["keys", "revoke", "nobody", *home])
    assert unknown.exit_code == 1 and "no API key" in unknown.output
    store = ChdbStore(Settings(home=tmp_path / "keys-home").chdb_path)
    try:
        [key] = KeyRing(store).list()
        stored = store.query("SELECT key_hash FROM api_keys")
    finally:
        store.close()
    assert key.name == "crm" and key.revoked_at is not None
    assert all(secret not in row["key_hash"] for row in stored)


async def test_keys_commands_go_through_the_store_worker_of_a_running_platform(
    client: httpx.AsyncClient, secured_settings: Settings
) -> None:
    """The platform's store worker holds the chDB folder (here, in this process): the command,
    another process, cannot open it and writes through the store worker on the bus."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(secured_settings.home),
        "AIRPARADIS_NATS_URL": str(secured_settings.nats_url),
    }

    async def keys_command(*args: str) -> subprocess.CompletedProcess[str]:
        # In a thread: this event loop runs the store worker that must answer the command.
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "airparadis", "--log-format", "text", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = await keys_command("create", "--name", "crm", "--scope", "predict")
    assert created.returncode == 0, created.stderr[-3000:]
    assert "store worker of the running platform" in " ".join(created.stderr.split())
    secret = created.stdout.strip().splitlines()[-1]
    answer = await client.post("/v1/predict", json={"text": "great crew"}, headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    revoked = await keys_command("revoke", "crm")
    assert revoked.returncode == 0, revoked.stderr[-3000:]
    refused = await client.post("/v1/predict", json={"text": "great crew"}, headers=bearer(secret))
    assert refused.status_code == 401
    listed = await keys_command("list")
    assert listed.returncode == 0 and "crm" in listed.stdout
