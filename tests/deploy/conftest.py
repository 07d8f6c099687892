"""Fixtures of the deployment tests: a nats-server started with the rendered accounts config,
over TLS with certificates `airparadis tls init` made, as the compose stack runs it."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airparadis.bus_init import init_bus
from airparadis.tls import ensure_certificates
from infra.nats.render_accounts import USERS, ServiceUser, render
from shared.nats_server import NatsServerProcess, free_port
from shared.settings import Settings
from shared.tls import client_context

# Test-only: sees every subject, publishes nothing useful. It witnesses that an allowed publish
# arrives and that a refused one does not.
OBSERVER = ServiceUser(
    "observer",
    "test witness",
    publishes=("observer.unused",),
    subscribes=(">",),
    reads_replies=True,
)


@dataclass
class AccountsServer:
    """A nats-server with the platform's accounts and the test passwords of each user."""

    url: str
    passwords: dict[str, str]
    log_path: Path
    ca_file: Path

    def tls(self) -> ssl.SSLContext:
        """The client context every service builds from AIRPARADIS_NATS_TLS_CA."""
        return client_context(self.ca_file, "test CA")

    def login(self, user: str) -> dict[str, Any]:
        """nats-py connect() arguments for `user`: password and TLS."""
        return {"user": user, "password": self.passwords[user], "tls": self.tls()}

    def violations(self) -> list[str]:
        """The permission violations the server logged."""
        text = self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if "Violation" in line]


@pytest.fixture
def nats_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AccountsServer]:
    """nats-server started with the rendered config (store, ports and certificates moved to
    this test); its certificate names 127.0.0.1, where the tests dial it."""
    users = (*USERS, OBSERVER)
    passwords = {user.name: f"test-{user.name}-{uuid.uuid4().hex}" for user in users}
    for user in users:  # nats-server reads $NATS_<USER>_PASSWORD from its environment
        monkeypatch.setenv(user.password_env, passwords[user.name])
    monkeypatch.setenv("AIRPARADIS_DURABILITY", "always")  # and its sync_interval
    store = tmp_path / "jetstream"
    tls = tmp_path / "tls"
    ensure_certificates(tls, tmp_path / "tls-authority", ["nats"], ["localhost", "127.0.0.1"])
    config = tmp_path / "nats-server.conf"
    config.write_text(
        render(users=users, store_dir=None, monitor_port=free_port(), tls_dir=str(tls / "nats")),
        encoding="utf-8",
    )
    with NatsServerProcess(store, config_file=config) as server:
        # The streams, made by the only user allowed to, as the bus-init one-shot does.
        as_bus = Settings(
            nats_url=server.url,
            nats_user="bus",
            nats_password=passwords["bus"],
            nats_tls_ca=tls / "ca.crt",
        )
        asyncio.run(init_bus(as_bus, wait_s=10))
        yield AccountsServer(server.url, passwords, server.log_path, tls / "ca.crt")
