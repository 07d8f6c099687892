"""The compose profile `cluster`'s NATS config, run: three nats-servers started with the
rendered infra/nats/nats-server-cluster.conf (accounts, TLS for clients, mutual TLS between the
nodes with the certificates `airparadis tls init` makes), then `airparadis bus init` as the
`bus` user makes every stream with three replicas, one on each node."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from airparadis.bus_init import init_bus
from airparadis.tls import ensure_certificates
from infra.nats import render_accounts
from infra.nats.render_accounts import USERS, render
from shared import subjects
from shared.nats_server import NatsServerProcess, free_port
from shared.settings import Settings

pytestmark = pytest.mark.integration

NODES = ("n1", "n2", "n3")


def test_the_committed_cluster_config_is_the_rendered_one() -> None:
    for path, rendered in render_accounts.rendered_files().items():
        assert path.read_text(encoding="utf-8") == rendered, f"{path}: run render_accounts"


@pytest.fixture
def tls_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[list[str], dict[str, str], Path]]:
    passwords = {user.name: f"test-{user.name}-{uuid.uuid4().hex}" for user in USERS}
    for user in USERS:
        monkeypatch.setenv(user.password_env, passwords[user.name])
    monkeypatch.setenv("AIRPARADIS_DURABILITY", "1s")
    tls = tmp_path / "tls"
    ensure_certificates(tls, tmp_path / "tls-authority", list(NODES), ["localhost", "127.0.0.1"])
    route_ports = {node: free_port() for node in NODES}
    routes = tuple(f"nats-route://127.0.0.1:{port}" for port in route_ports.values())
    servers: list[NatsServerProcess] = []
    try:
        for node in NODES:
            config = tmp_path / f"{node}.conf"
            config.write_text(
                render(
                    store_dir=None,
                    monitor_port=free_port(),
                    tls_dir=str(tls / node),
                    routes=routes,
                    route_listen=f"127.0.0.1:{route_ports[node]}",
                    ca_file=str(tls / "ca.crt"),
                ),
                encoding="utf-8",
            )
            # What compose gives each node: its name and its own certificate.
            monkeypatch.setenv("NATS_SERVER_NAME", f"airparadis-{node}")
            monkeypatch.setenv("NATS_TLS_CERT", str(tls / node / "tls.crt"))
            monkeypatch.setenv("NATS_TLS_KEY", str(tls / node / "tls.key"))
            server = NatsServerProcess(tmp_path / node, config_file=config)
            server.start()
            servers.append(server)
        yield [server.url for server in servers], passwords, tls / "ca.crt"
    finally:
        for server in servers:
            server.stop()


async def test_bus_init_makes_three_replicas_on_the_rendered_cluster(
    tls_cluster: tuple[list[str], dict[str, str], Path],
) -> None:
    urls, passwords, ca_file = tls_cluster
    as_bus = Settings(
        nats_url=",".join(urls),
        nats_user="bus",
        nats_password=passwords["bus"],
        nats_tls_ca=ca_file,
        stream_replicas=3,
    )
    outcomes = await init_bus(as_bus, wait_s=60)
    assert {o.name for o in outcomes} == {*subjects.STREAMS, f"KV_{subjects.KV_ALERTER}"}
    for outcome in outcomes:
        assert outcome.action == "created" and outcome.replicas == 3, outcome
        nodes = {outcome.leader, *(peer.split(" ")[0] for peer in outcome.peers)}
        assert nodes == {f"airparadis-{node}" for node in NODES}, outcome
    again = await init_bus(as_bus, wait_s=30)
    assert {o.action for o in again} == {"unchanged"}
