"""The whole platform with each service connected as its own NATS user, as in the compose stack.

The permission table must be tight, but never too tight: a refused publish or subscription
makes a worker fail at start or lose its answers. Here every worker and the gateway run in their
own Platform, each with its user's credentials, against a nats-server started with the rendered
accounts; a tweet, an explanation, three reports (one alert email), a dead letter, a model
promotion and requests refused for their rate (the gateway's summary, stored) go through, and
the server must log no permission violation at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg

from airparadis.wiring import WORKERS, Platform, Worker, build_platform
from shared import subjects
from shared.bus import make_broker, publish_event
from shared.messages import ModelPromoted
from shared.settings import Settings
from tests.deploy.conftest import AccountsServer
from tests.servers import eventually, smtp_server

pytestmark = pytest.mark.integration


def broker_as_user(settings: Settings) -> NatsBroker:
    """The broker a service builds in compose mode: logged in as settings.nats_user."""
    assert settings.nats_url and settings.nats_user and settings.nats_password
    return make_broker(settings)


async def test_make_broker_logs_in_as_the_configured_user(
    settings: Settings, nats_accounts: AccountsServer
) -> None:
    as_gateway = settings.model_copy(
        update={
            "nats_url": nats_accounts.url,
            "nats_tls_ca": nats_accounts.ca_file,
            "nats_user": "gateway",
            "nats_password": nats_accounts.passwords["gateway"],
        }
    )
    broker = make_broker(as_gateway)
    await broker.connect()
    try:
        assert await broker.ping(timeout=2.0)
    finally:
        await broker.stop()


@asynccontextmanager
async def running(
    settings: Settings, workers: tuple[Worker, ...], gateway: bool
) -> AsyncIterator[Platform]:
    platform = build_platform(
        settings, workers, with_gateway=gateway, broker=broker_as_user(settings)
    )
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


@asynccontextmanager
async def observed(server: AccountsServer, subject: str) -> AsyncIterator[list[Msg]]:
    """Messages on `subject`, seen by the test-only observer user."""
    seen: list[Msg] = []

    async def on_msg(msg: Msg) -> None:
        seen.append(msg)

    nc = Client()
    await nc.connect(server.url, **server.login("observer"))
    await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    try:
        yield seen
    finally:
        await nc.close()


async def test_pipeline_runs_with_each_service_as_its_own_nats_user(
    settings: Settings, registry: str, nats_accounts: AccountsServer
) -> None:
    with smtp_server() as (smtp, inbox):
        base = settings.model_copy(
            update={
                "nats_url": nats_accounts.url,
                "nats_tls_ca": nats_accounts.ca_file,
                "mlflow_tracking_uri": registry,
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "batch_max_wait_ms": 10,
                "store_flush_ms": 50,
                "ack_wait_s": 3.0,
                "refusals_flush_s": 0.2,
                "rate_limit_per_s": 1.0,  # 30 quick calls run the bucket dry, however slow
            }
        )

        def as_user(name: str) -> Settings:
            return base.model_copy(
                update={"nats_user": name, "nats_password": nats_accounts.passwords[name]}
            )

        async with AsyncExitStack() as stack:
            dead_letters = await stack.enter_async_context(observed(nats_accounts, "dlq.>"))
            model_acks = await stack.enter_async_context(
                observed(nats_accounts, f"$JS.ACK.{subjects.STREAM_MODELS}.>")
            )
            for worker in WORKERS:
                await stack.enter_async_context(running(as_user(worker), (worker,), False))
            gateway = await stack.enter_async_context(running(as_user("gateway"), (), True))
            assert gateway.gateway is not None
            transport = httpx.ASGITransport(app=gateway.gateway)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30)
            )

            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.json()

            predictions = []
            for n in range(3):
                answer = await http.post("/v1/predict", json={"text": f"Lovely crew on flight {n}"})
                assert answer.status_code == 200, answer.json()
                predictions.append(answer.json())

            explained = await http.post("/v1/explain", json={"text": "Lost my bag again"})
            assert explained.status_code == 200, explained.json()

            for prediction in predictions:
                reported = await http.post(
                    "/v1/feedback",
                    json={"prediction_id": prediction["id"], "correct_label": "negative"},
                )
                assert reported.status_code in (200, 201, 202), reported.json()
            await eventually(lambda: len(inbox.messages) == 1, what="one alert email")

            # An upstream app's bad payload is dead-lettered by preprocess.
            upstream = Client()
            await upstream.connect(nats_accounts.url, **nats_accounts.login("upstream"))
            await upstream.jetstream().publish(subjects.TWEETS_SUBMITTED, b"{not json")
            await upstream.close()
            await eventually(lambda: len(dead_letters) == 1, what="a dead letter")
            assert dead_letters[0].subject == subjects.dead_letter_subject(
                subjects.TWEETS_SUBMITTED
            )

            # `airparadis models promote` announces as the trainer user (as Registry.announce
            # does); infer takes the event and acks it.
            trainer = broker_as_user(as_user("trainer"))
            await trainer.connect()
            promoted = ModelPromoted(
                model_name=base.model_name, version=predictions[0]["model_version"]
            )
            await publish_event(
                trainer,
                promoted,
                subjects.MODELS_PROMOTED,
                msg_id=f"promoted-{promoted.version}",
                stream=subjects.STREAM_MODELS,
            )
            await trainer.stop()
            await eventually(lambda: len(model_acks) >= 1, what="infer acking the promotion")

            # Requests refused for their rate: summed by the gateway, stored by the store.
            answers = [(await http.get("/v1/whoami")).status_code for _ in range(30)]
            refused = answers.count(429)
            assert refused > 0, answers

            repository = gateway.repository
            assert repository is not None

            async def stored() -> bool:
                counted = await asyncio.to_thread(
                    repository.store.query, "SELECT sum(refused) AS n FROM refusals FINAL"
                )
                return (
                    await repository.count("predictions") >= 3
                    and await repository.count("feedback") == 3
                    and await repository.count("alerts") == 1
                    and counted == [{"n": refused}]
                )

            await eventually(stored, what="predictions, reports, the alert and refusals stored")

    assert nats_accounts.violations() == []
