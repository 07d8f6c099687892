"""Real server images started by testcontainers; skipped, with the reason, without Docker."""

from __future__ import annotations

import re
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def why_no_docker() -> str | None:
    try:
        import docker
    except ImportError:
        return "the docker SDK is missing (pip install -e '.[dev]')"
    try:
        docker.from_env().ping()
    except Exception as error:
        return f"no Docker engine answers: {error}"
    return None


def require_docker() -> None:
    if reason := why_no_docker():
        pytest.skip(reason)


def wait_http(
    url: str,
    within: float = 120.0,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Wait until `url` answers 200 (a container's start time varies a lot on CI); an https
    URL is checked with `context`."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=3, context=context) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last = error
        time.sleep(1.0)
    raise AssertionError(f"{url} did not answer 200 within {within:g} s: {last}")


# --- A ClickHouse cluster as compose's `cluster` profile runs it ---

CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
KEEPER_IMAGE = "clickhouse/clickhouse-keeper:25.8"
CLUSTER = "airparadis"
REPLICAS = ("clickhouse", "clickhouse-2")
_USERS = {
    "admin": "airparadis_admin",
    "writer": "airparadis_writer",
    "grafana": "airparadis_grafana",
}


@dataclass
class ClickHouseCluster:
    """Keeper and two ClickHouse replicas with compose's environment and mounts; each replica's
    HTTPS port is published on the host (certificates name localhost)."""

    hosts: dict[str, str]  # replica -> localhost:port of its 8443
    passwords: dict[str, str]  # admin, writer, grafana
    ca_file: Path
    name: str = CLUSTER

    def url(self, replica: str, user: str = "admin", database: str = "airparadis") -> str:
        return f"https://{_USERS[user]}:{self.passwords[user]}@{self.hosts[replica]}/{database}"


def compose_service(name: str) -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    service: dict[str, Any] = compose["services"][name]
    return service


def _compose_environment(service: dict[str, Any], passwords: dict[str, str]) -> dict[str, str]:
    """The service's environment with each ${CLICKHOUSE_<USER>_PASSWORD:?...} filled in."""
    environment = {}
    for key, value in service["environment"].items():
        required = re.fullmatch(r"\$\{CLICKHOUSE_([A-Z]+)_PASSWORD:\?[^}]*\}", str(value))
        environment[key] = passwords[required.group(1).lower()] if required else str(value)
    return environment


def _compose_mounts(service: dict[str, Any], tls_dir: Path) -> dict[Path, str]:
    """The service's repository files and its `tls` volume, host path -> container path, with
    AIRPARADIS_CLICKHOUSE_CLUSTER set; data volumes stay in the container."""
    mounts = {}
    for mount in service["volumes"]:
        mount = mount.replace("${AIRPARADIS_CLICKHOUSE_CLUSTER:-none}", CLUSTER)
        source, target = mount.split(":")[:2]
        if source.startswith("./"):
            mounts[ROOT / source] = target
        elif source == "tls":
            mounts[tls_dir] = target
    return mounts


def _replica(name: str, network: Any, passwords: dict[str, str], tls_dir: Path) -> Any:
    from testcontainers.core.container import DockerContainer

    service = compose_service(name)
    assert service["image"] == CLICKHOUSE_IMAGE
    container = (
        DockerContainer(CLICKHOUSE_IMAGE)
        .with_network(network)
        .with_network_aliases(name)  # its host name in the cluster config, as in compose
        .with_exposed_ports(8443)
    )
    for key, value in _compose_environment(service, passwords).items():
        container = container.with_env(key, value)
    for host, target in _compose_mounts(service, tls_dir).items():
        container = container.with_volume_mapping(host, target)
    return container


@contextmanager
def clickhouse_cluster(directory: Path) -> Iterator[ClickHouseCluster]:
    """Keeper and the two replicas on one Docker network, started and always removed; skips,
    with the reason, without Docker."""
    require_docker()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    from airparadis.tls import SERVER_KEY, ensure_certificates
    from shared.tls import client_context

    tls = directory / "tls"
    ensure_certificates(tls, directory / "authority", list(REPLICAS), ["localhost", "127.0.0.1"])
    for replica in REPLICAS:  # compose gives the key to group 101; a test runner is not root
        (tls / replica).chmod(0o755)
        (tls / replica / SERVER_KEY).chmod(0o644)
    passwords = {user: uuid.uuid4().hex for user in _USERS}
    keeper_service = compose_service("clickhouse-keeper")
    assert keeper_service["image"] == KEEPER_IMAGE
    keeper = DockerContainer(KEEPER_IMAGE).with_network_aliases("clickhouse-keeper")
    with Network() as network:
        keeper = keeper.with_network(network)
        for host, target in _compose_mounts(keeper_service, tls).items():
            keeper = keeper.with_volume_mapping(host, target)
        first, second = (_replica(name, network, passwords, tls) for name in REPLICAS)
        with keeper, first, second:
            context = client_context(tls / "ca.crt", "test CA")
            hosts = {
                name: f"localhost:{container.get_exposed_port(8443)}"
                for name, container in zip(REPLICAS, (first, second), strict=True)
            }
            for host in hosts.values():
                wait_http(f"https://{host}/ping", context=context)
            cluster = ClickHouseCluster(hosts, passwords, tls / "ca.crt")
            for replica in REPLICAS:
                _wait_for_keeper(cluster, replica)
            yield cluster


def _wait_for_keeper(cluster: ClickHouseCluster, replica: str, within: float = 120.0) -> None:
    """Until the replica's admin user logs in (the image's entrypoint makes it at first start)
    and the replica reaches Keeper."""
    from shared.storage import ServerStore, StorageError

    deadline = time.monotonic() + within
    while True:
        try:
            store = ServerStore(cluster.url(replica), ca_file=cluster.ca_file)
            try:
                store.query("SELECT count() AS n FROM system.zookeeper WHERE path = '/'")
                return
            finally:
                store.close()
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
