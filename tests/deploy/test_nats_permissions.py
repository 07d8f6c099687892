"""The NATS accounts of the compose stack: one user per service, each held to its subjects.

The committed nats-server.conf must be the one rendered from the permission table; the rest
runs a real nats-server with that config and connects as each user. A refused publish or
subscription is proven twice: the server reports a Permissions Violation to the client, and a
witness subscribed to every subject does not receive the message (while it does receive the
allowed ones, so the check cannot pass by hearing nothing at all).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from airparadis.bus_init import BusInitError, init_bus
from infra.nats import render_accounts
from infra.nats.render_accounts import USERS, permissions_of
from shared import subjects
from shared.settings import Settings
from tests.deploy.conftest import AccountsServer
from tests.servers import eventually

S = subjects


def test_committed_config_is_the_rendered_one() -> None:
    committed = render_accounts.CONFIG_PATH.read_text(encoding="utf-8")
    assert committed == render_accounts.render(), (
        "infra/nats/nats-server.conf is out of date: run python -m infra.nats.render_accounts"
    )


def test_every_password_is_an_environment_reference_and_nobody_is_anonymous() -> None:
    config = render_accounts.render()
    settings = [line.strip() for line in config.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in settings if line.startswith(("no_auth_user", "authorization"))]
    for user in USERS:
        assert f"user: {user.name}\n        password: ${user.password_env}\n" in config


def test_only_the_gateway_and_upstream_apps_read_the_gateway_reply_inboxes() -> None:
    inboxes = "_INBOX.airparadis.>"
    readers = {u.name for u in USERS if inboxes not in permissions_of(u).subscribe_deny}
    assert readers == {"gateway", "upstream"}


@dataclass
class Connection:
    nc: Client
    errors: list[str] = field(default_factory=list)

    def violations(self, subject: str) -> list[str]:
        """The permission errors the server sent about `subject` (nats-py lowercases them)."""
        quoted = f'"{subject}"'.lower()
        return [e for e in self.errors if "permissions violation" in e and quoted in e]


@asynccontextmanager
async def connected(server: AccountsServer, user: str) -> AsyncIterator[Connection]:
    connection = Connection(nc=Client())

    async def on_error(error: Exception) -> None:
        connection.errors.append(str(error))

    await connection.nc.connect(
        server.url,
        **server.login(user),
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        yield connection
    finally:
        await connection.nc.close()


@asynccontextmanager
async def witness(
    server: AccountsServer, subject: str = ">", queue: str = "", user: str = "observer"
) -> AsyncIterator[tuple[Connection, list[Msg]]]:
    received: list[Msg] = []

    async def on_msg(msg: Msg) -> None:
        received.append(msg)

    async with connected(server, user) as connection:
        await connection.nc.subscribe(subject, queue=queue, cb=on_msg)
        await connection.nc.flush()
        yield connection, received


def payloads(messages: list[Msg]) -> set[bytes]:
    return {m.data for m in messages}


ALLOWED_PUBLISHES = [
    ("gateway", S.TWEETS_SUBMITTED),
    ("gateway", S.FEEDBACK_REPORTED),
    ("gateway", S.EXPLAIN_REQUESTED),
    ("gateway", S.GATEWAY_REFUSED),  # its summary of the requests it refused for their rate
    ("store", S.dead_letter_subject(S.GATEWAY_REFUSED)),
    ("preprocess", S.TWEETS_PREPROCESSED),
    ("preprocess", S.dead_letter_subject(S.TWEETS_SUBMITTED)),
    ("preprocess", f"{S.REPLY_PREFIX}.abc.t-1"),
    ("infer", S.TWEETS_SCORED),
    ("infer", f"{S.REPLY_PREFIX}.abc.t-1"),
    ("store", S.dead_letter_subject(S.TWEETS_SCORED)),
    ("alerter", S.ALERTS_RAISED),
    ("alerter", f"$KV.{S.KV_ALERTER}.wrong_predictions.window"),
    ("trainer", S.MODELS_PROMOTED),
    ("trainer", S.STORE_FORGET),  # `airparadis data forget` asks the store worker
    ("trainer", S.STORE_EXPORT),
    ("store", S.PRIVACY_ERASED),
    ("upstream", S.TWEETS_SUBMITTED),
    ("upstream", S.FEEDBACK_REPORTED),
]

FORBIDDEN_PUBLISHES = [
    ("store", S.TWEETS_SUBMITTED),
    ("store", S.ALERTS_RAISED),
    ("gateway", S.TWEETS_SCORED),
    ("gateway", S.MODELS_PROMOTED),
    ("gateway", S.dead_letter_subject(S.TWEETS_SUBMITTED)),
    ("preprocess", S.TWEETS_SCORED),
    ("preprocess", S.dead_letter_subject(S.FEEDBACK_REPORTED)),  # not a subject it consumes
    ("infer", S.ALERTS_RAISED),
    ("infer", S.FEEDBACK_REPORTED),
    ("alerter", S.TWEETS_SCORED),
    ("alerter", S.MODELS_PROMOTED),
    ("trainer", S.TWEETS_SUBMITTED),
    ("upstream", S.MODELS_PROMOTED),
    ("upstream", S.TWEETS_SCORED),
    ("upstream", S.GATEWAY_REFUSED),  # no one but the gateway counts its refusals
    ("store", S.GATEWAY_REFUSED),
    ("gateway", S.dead_letter_subject(S.GATEWAY_REFUSED)),
    ("store", "_INBOX.airparadis.abc.t-1"),  # only preprocess and infer answer callers
    ("gateway", f"$KV.{S.KV_ALERTER}.wrong_predictions.window"),
    ("store", "$JS.API.STREAM.DELETE.TWEETS"),
    ("store", "$JS.API.STREAM.PURGE.MODELS"),  # it purges the ingress subjects' streams only
    ("store", "$JS.API.STREAM.PURGE.DLQ"),
    ("gateway", S.STORE_FORGET),  # erasure is the command's, through the trainer user
    ("upstream", S.STORE_EXPORT),
    ("gateway", S.PRIVACY_ERASED),
    ("gateway", "$JS.API.CONSUMER.CREATE.FEEDBACK"),  # no reading feedback through a consumer
    ("gateway", "$JS.API.STREAM.MSG.GET.FEEDBACK"),
    ("infer", "$JS.API.CONSUMER.DELETE.TWEETS.preprocess"),
    ("gateway", "$JS.ACK.ALERTS.store-alerts.1.2.3.4.5"),  # another service's acks
]


@pytest.mark.integration
@pytest.mark.parametrize(("user", "subject"), ALLOWED_PUBLISHES)
async def test_allowed_publish_is_delivered(
    nats_accounts: AccountsServer, user: str, subject: str
) -> None:
    body = uuid.uuid4().bytes
    async with (
        witness(nats_accounts, subject) as (observer, seen),
        connected(nats_accounts, user) as publisher,
    ):
        await publisher.nc.publish(subject, body)
        await publisher.nc.flush()
        await eventually(lambda: body in payloads(seen), within=5, what=f"{subject} delivered")
        await observer.nc.flush()
    assert publisher.violations(subject) == []


@pytest.mark.integration
@pytest.mark.parametrize(("user", "subject"), FORBIDDEN_PUBLISHES)
async def test_forbidden_publish_is_refused(
    nats_accounts: AccountsServer, user: str, subject: str
) -> None:
    body = uuid.uuid4().bytes
    async with (
        witness(nats_accounts, subject) as (observer, seen),
        connected(nats_accounts, user) as publisher,
    ):
        await publisher.nc.publish(subject, body)
        await publisher.nc.flush()
        await eventually(
            lambda: bool(publisher.violations(subject)), within=5, what="a permissions violation"
        )
        # The round trips above and here order delivery: a message the server had routed
        # would already be in the witness's hands.
        await observer.nc.flush()
    assert "permissions violation for publish" in publisher.violations(subject)[0]
    assert body not in payloads(seen)


ALLOWED_SUBSCRIPTIONS = [
    # (subscriber, subject, queue, publisher, published subject)
    ("upstream", S.TWEETS_SCORED, "", "infer", S.TWEETS_SCORED),
    ("gateway", f"{S.REPLY_PREFIX}.gw1.*", "", "infer", f"{S.REPLY_PREFIX}.gw1.t-1"),
    ("infer", S.INFER_STATUS, "", "gateway", S.INFER_STATUS),
    ("infer", S.EXPLAIN_REQUESTED, S.INFER_QUEUE, "gateway", S.EXPLAIN_REQUESTED),
    ("store", S.STORE_FORGET, S.STORE_QUEUE, "trainer", S.STORE_FORGET),
    ("gateway", S.PRIVACY_ERASED, "", "store", S.PRIVACY_ERASED),
]

FORBIDDEN_SUBSCRIPTIONS = [
    ("gateway", S.FEEDBACK_REPORTED, "", "upstream", S.FEEDBACK_REPORTED),
    ("gateway", "tweets.>", "", "upstream", S.TWEETS_SUBMITTED),
    ("store", ">", "", "upstream", S.TWEETS_SUBMITTED),
    ("trainer", S.TWEETS_SCORED, "", "infer", S.TWEETS_SCORED),
    ("infer", S.FEEDBACK_REPORTED, "", "upstream", S.FEEDBACK_REPORTED),
    ("alerter", S.TWEETS_SUBMITTED, "", "gateway", S.TWEETS_SUBMITTED),
    # someone else's answers to the gateway's callers
    ("preprocess", f"{S.REPLY_PREFIX}.gw1.*", "", "infer", f"{S.REPLY_PREFIX}.gw1.t-1"),
    # infer answers explanations only in its queue group, so replicas share them
    ("infer", S.EXPLAIN_REQUESTED, "", "gateway", S.EXPLAIN_REQUESTED),
    ("infer", S.EXPLAIN_REQUESTED, "spy", "gateway", S.EXPLAIN_REQUESTED),
]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("user", "subject", "queue", "publisher_user", "published"), ALLOWED_SUBSCRIPTIONS
)
async def test_allowed_subscription_receives(
    nats_accounts: AccountsServer,
    user: str,
    subject: str,
    queue: str,
    publisher_user: str,
    published: str,
) -> None:
    body = uuid.uuid4().bytes
    async with (
        witness(nats_accounts, subject, queue, user=user) as (subscriber, seen),
        connected(nats_accounts, publisher_user) as publisher,
    ):
        await publisher.nc.publish(published, body)
        await publisher.nc.flush()
        await eventually(lambda: body in payloads(seen), within=5, what="the message")
    assert subscriber.violations(subject) == []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("user", "subject", "queue", "publisher_user", "published"), FORBIDDEN_SUBSCRIPTIONS
)
async def test_forbidden_subscription_is_refused(
    nats_accounts: AccountsServer,
    user: str,
    subject: str,
    queue: str,
    publisher_user: str,
    published: str,
) -> None:
    body = uuid.uuid4().bytes
    async with witness(nats_accounts, subject, queue, user=user) as (subscriber, seen):
        await eventually(
            lambda: bool(subscriber.violations(subject)), within=5, what="a permissions violation"
        )
        # The publisher is allowed to publish there, and a witness proves the message flows.
        async with (
            witness(nats_accounts, published) as (_, witnessed),
            connected(nats_accounts, publisher_user) as publisher,
        ):
            await publisher.nc.publish(published, body)
            await publisher.nc.flush()
            await eventually(lambda: body in payloads(witnessed), within=5, what="the message")
        await subscriber.nc.flush()
    assert "permissions violation for subscription" in subscriber.violations(subject)[0]
    assert body not in payloads(seen)


async def _connect_fails(server: AccountsServer, **credentials: str) -> str:
    with pytest.raises(Exception) as refused:  # nats-py raises a plain Error
        await nats.connect(
            server.url, allow_reconnect=False, connect_timeout=2, tls=server.tls(), **credentials
        )
    return str(refused.value) + repr(refused.value)


@pytest.mark.integration
async def test_anonymous_connection_is_refused(nats_accounts: AccountsServer) -> None:
    reason = await _connect_fails(nats_accounts)
    assert "authorization" in reason.lower()


@pytest.mark.integration
async def test_wrong_password_is_refused(nats_accounts: AccountsServer) -> None:
    reason = await _connect_fails(nats_accounts, user="gateway", password="not-the-password")
    assert "authorization" in reason.lower()


@pytest.mark.integration
async def test_gateway_cannot_read_feedback_through_jetstream(
    nats_accounts: AccountsServer,
) -> None:
    """The gateway may look the streams up, but not create a consumer on FEEDBACK to read it."""
    async with connected(nats_accounts, "upstream") as upstream:
        await upstream.nc.publish(S.FEEDBACK_REPORTED, b"{}")
    async with connected(nats_accounts, "gateway") as gateway:
        js = gateway.nc.jetstream(timeout=2)
        assert (await js.stream_info(S.STREAM_FEEDBACK)).config.name == S.STREAM_FEEDBACK
        with pytest.raises(Exception):  # noqa: B017 - the refused request times out
            await js.pull_subscribe(S.FEEDBACK_REPORTED, durable="spy", stream="FEEDBACK")

        def refused() -> list[str]:
            return [e for e in gateway.errors if "permissions violation" in e]

        await eventually(lambda: bool(refused()), within=5, what="a refused consumer request")
    assert all("$js.api.consumer" in e for e in refused()), refused()


def test_only_the_bus_user_may_create_or_change_a_stream() -> None:
    creators = {
        user.name
        for user in USERS
        for subject in permissions_of(user).publish_allow
        if subject.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE"))
    }
    assert creators == {"bus"}


@pytest.mark.integration
@pytest.mark.parametrize("user", [u.name for u in USERS if u.name != "bus"])
async def test_no_service_creates_updates_or_deletes_a_stream(
    nats_accounts: AccountsServer, user: str
) -> None:
    """Every service's request to create, change or delete a stream (or the KV bucket's) is
    refused by the server, and the streams `bus init` made stay as they were."""
    attempts = {
        f"$JS.API.STREAM.CREATE.{S.STREAM_TWEETS}": {"name": S.STREAM_TWEETS, "subjects": ["x"]},
        f"$JS.API.STREAM.UPDATE.{S.STREAM_TWEETS}": {"name": S.STREAM_TWEETS, "num_replicas": 1},
        "$JS.API.STREAM.CREATE.ROGUE": {"name": "ROGUE", "subjects": ["rogue.>"]},
        f"$JS.API.STREAM.DELETE.{S.STREAM_DLQ}": {},
        f"$JS.API.STREAM.CREATE.KV_{S.KV_ALERTER}": {"name": f"KV_{S.KV_ALERTER}"},
    }
    async with connected(nats_accounts, user) as service:
        for subject, body in attempts.items():
            with pytest.raises(nats.errors.TimeoutError):  # refused: no answer comes back
                await service.nc.request(subject, json.dumps(body).encode(), timeout=0.5)
        for subject in attempts:
            await eventually(
                lambda subject=subject: bool(service.violations(subject)),  # type: ignore[misc]
                within=5,
                what=f"a violation for {subject}",
            )
    async with connected(nats_accounts, "bus") as bus:
        js = bus.nc.jetstream(timeout=5)
        tweets = await js.stream_info(S.STREAM_TWEETS)
        assert sorted(tweets.config.subjects or []) == sorted(S.STREAMS[S.STREAM_TWEETS])
        assert (await js.stream_info(S.STREAM_DLQ)).config.name == S.STREAM_DLQ


@pytest.mark.integration
async def test_the_bus_user_creates_and_updates_the_streams(nats_accounts: AccountsServer) -> None:
    """`bus init` as its user changes a limit in place; as another user it says why it cannot."""
    as_bus = Settings(
        nats_url=nats_accounts.url,
        nats_user="bus",
        nats_password=nats_accounts.passwords["bus"],
        nats_tls_ca=nats_accounts.ca_file,
        max_message_kb=32,
    )
    outcomes = {o.name: o for o in await init_bus(as_bus, wait_s=5)}
    assert outcomes[S.STREAM_TWEETS].action == "updated"
    assert outcomes[S.STREAM_TWEETS].changes == ["max msg size 65536 → 32768"]
    assert outcomes[S.STREAM_ALERTS].action == "unchanged"
    as_store = as_bus.model_copy(
        update={"nats_user": "store", "nats_password": nats_accounts.passwords["store"]}
    )
    with pytest.raises(BusInitError, match="may not create streams"):
        await init_bus(as_store.model_copy(update={"max_message_kb": 16}), wait_s=2)
