"""The compose stack's NATS and Grafana configs on the real images (testcontainers).

Skipped, with the reason, where no Docker engine answers; CI runs them. The NATS image gets the
committed nats-server.conf as compose mounts it, with certificates `airparadis tls init` made
(as the `tls` one-shot does); Grafana gets the provisioning folders, the ClickHouse plugin and
the CA, and must load the data source (TLS, checked against that CA) and the dashboard provider.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from airparadis.tls import ensure_certificates
from infra.nats.render_accounts import CONFIG_PATH, USERS
from shared import subjects
from shared.tls import client_context
from tests.deploy.containers import require_docker, wait_http
from tests.servers import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def compose_image(service: str) -> str:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    image: str = compose["services"][service]["image"]
    return image


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the tls one-shot puts in the `tls` volume."""
    tls = tmp_path_factory.mktemp("tls")
    ensure_certificates(tls, tmp_path_factory.mktemp("authority"), ["nats", "clickhouse"])
    return tls


def login(user: str, passwords: dict[str, str], certificates: Path) -> dict[str, Any]:
    """A service's connect() arguments; the certificate is checked for the name `nats`, the
    host name compose gives the server, whatever address Docker maps its port to."""
    return {
        "user": user,
        "password": passwords[user],
        "tls": client_context(certificates / "ca.crt", "test CA"),
        "tls_hostname": "nats",
    }


@pytest.fixture(scope="module")
def nats_container(certificates: Path) -> Iterator[tuple[str, dict[str, str]]]:
    require_docker()
    from testcontainers.core.container import DockerContainer

    passwords = {user.name: uuid.uuid4().hex for user in USERS}
    container = (
        DockerContainer(compose_image("nats"))
        .with_command("--config /etc/nats/nats-server.conf")
        .with_volume_mapping(CONFIG_PATH, "/etc/nats/nats-server.conf")
        .with_volume_mapping(certificates, "/tls")
        .with_env("AIRPARADIS_DURABILITY", "always")
        .with_exposed_ports(4222, 8222)
    )
    for user in USERS:
        container = container.with_env(user.password_env, passwords[user.name])
    with container:
        host = container.get_container_host_ip()
        wait_http(f"http://{host}:{container.get_exposed_port(8222)}/healthz?js-enabled-only=true")
        yield f"nats://{host}:{container.get_exposed_port(4222)}", passwords


async def test_nats_image_accepts_each_service_user_and_refuses_anonymous(
    nats_container: tuple[str, dict[str, str]], certificates: Path
) -> None:
    url, passwords = nats_container
    anonymous = login("gateway", passwords, certificates) | {"user": None, "password": None}
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(url, allow_reconnect=False, connect_timeout=3, **anonymous)
    for user in USERS:
        nc = await nats.connect(url, **login(user.name, passwords, certificates))
        await nc.close()


async def test_nats_image_serves_only_tls_with_the_stacks_certificate(
    nats_container: tuple[str, dict[str, str]], certificates: Path
) -> None:
    url, passwords = nats_container
    # A client that trusts only the system's authorities cannot check the stack's own.
    with pytest.raises(Exception, match=r"(?i)certificate verify failed"):
        await nats.connect(
            url,
            user="gateway",
            password=passwords["gateway"],
            allow_reconnect=False,
            connect_timeout=3,
        )


async def test_nats_image_refuses_a_forbidden_publish(
    nats_container: tuple[str, dict[str, str]], certificates: Path
) -> None:
    url, passwords = nats_container
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    store = await nats.connect(url, **login("store", passwords, certificates), error_cb=on_error)
    try:
        await store.publish(subjects.TWEETS_SUBMITTED, b"{}")
        await store.flush()
        await eventually(lambda: bool(errors), within=5, what="a permissions violation")
    finally:
        await store.close()
    assert 'permissions violation for publish to "tweets.submitted"' in errors[0]


GRAFANA_PASSWORD = uuid.uuid4().hex


@pytest.fixture(scope="module")
def grafana(certificates: Path) -> Iterator[tuple[str, Any]]:
    require_docker()
    from testcontainers.core.container import DockerContainer

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    environment = compose["services"]["grafana"]["environment"]
    provisioning = ROOT / "infra/grafana/provisioning"
    container = (
        DockerContainer(compose_image("grafana"))
        .with_env("GF_SECURITY_ADMIN_PASSWORD", GRAFANA_PASSWORD)
        .with_env("GF_AUTH_ANONYMOUS_ENABLED", environment["GF_AUTH_ANONYMOUS_ENABLED"])
        .with_env("GF_INSTALL_PLUGINS", environment["GF_INSTALL_PLUGINS"])
        .with_env("CLICKHOUSE_GRAFANA_PASSWORD", uuid.uuid4().hex)
        .with_volume_mapping(provisioning / "datasources", "/etc/grafana/provisioning/datasources")
        .with_volume_mapping(provisioning / "dashboards", "/etc/grafana/provisioning/dashboards")
        .with_volume_mapping(ROOT / "dashboards", "/etc/grafana/dashboards")
        .with_volume_mapping(certificates, "/tls")
        .with_exposed_ports(3000)
    )
    with container:
        base = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(3000)}"
        wait_http(f"{base}/api/health", within=240)  # the plugin downloads first
        yield base, container


def get(url: str, authenticated: bool = True) -> tuple[int, Any]:
    headers = {}
    if authenticated:
        token = base64.b64encode(f"admin:{GRAFANA_PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def test_grafana_refuses_anonymous_access(grafana: tuple[str, Any]) -> None:
    base, _ = grafana
    status, _ = get(f"{base}/api/datasources", authenticated=False)
    assert status == 401


def test_grafana_loads_the_provisioned_clickhouse_data_source(grafana: tuple[str, Any]) -> None:
    base, _ = grafana
    status, plugin = get(f"{base}/api/plugins/grafana-clickhouse-datasource/settings")
    assert status == 200, "the ClickHouse plugin is not installed"
    status, source = get(f"{base}/api/datasources/uid/clickhouse")
    assert status == 200
    assert source["type"] == plugin["id"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["username"] == "airparadis_grafana"
    assert source["jsonData"]["defaultDatabase"] == "airparadis"
    assert source["secureJsonFields"].get("password") is True
    # TLS to ClickHouse, checked against the stack's authority (the CA came from /tls).
    assert source["jsonData"]["secure"] is True
    assert source["jsonData"]["port"] == 8443
    assert source["jsonData"]["tlsAuthWithCACert"] is True
    assert source["secureJsonFields"].get("tlsCACert") is True


def test_grafana_loads_the_dashboard_provider(grafana: tuple[str, Any]) -> None:
    _, container = grafana
    stdout, stderr = container.get_logs()
    logs = (stdout + stderr).decode(errors="replace")
    provisioning_errors = [
        line for line in logs.splitlines() if "provisioning" in line and "level=error" in line
    ]
    assert provisioning_errors == []
    assert "finished to provision dashboards" in logs
