"""The ClickHouse users of the compose stack (infra/clickhouse/users.d/airparadis-users.xml).

chDB has no access control (CREATE USER and GRANT are refused in-process), so here:
- always: the grants of the XML parse as ClickHouse SQL (chDB's formatQuery) and name the
  database compose creates;
- with Docker (CI): a real ClickHouse server with that file, compose's environment and its TLS
  config (infra/clickhouse/config.d/tls.xml, certificates from `airparadis tls init`); the
  migrations run as the schema owner over HTTPS, then SQL proves what each user can and cannot
  do, and that the plain HTTP port is closed.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from airparadis.tls import SERVER_KEY, ensure_certificates
from shared.storage import ChdbStore, ServerStore, StorageError, apply_migrations
from shared.tls import client_context
from tests.deploy.containers import require_docker, wait_http

ROOT = Path(__file__).resolve().parents[2]
USERS_XML = ROOT / "infra/clickhouse/users.d/airparadis-users.xml"
TLS_XML = ROOT / "infra/clickhouse/config.d/tls.xml"
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"


def users() -> dict[str, ET.Element]:
    root = ET.parse(USERS_XML).getroot()
    users_node = root.find("users")
    assert users_node is not None
    return {user.tag: user for user in users_node}


def grants(user: ET.Element) -> list[str]:
    return [q.text or "" for q in user.findall("grants/query")]


def clickhouse_service() -> dict[str, object]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    service: dict[str, object] = compose["services"]["clickhouse"]
    return service


def test_users_are_the_writer_and_the_read_only_grafana_user() -> None:
    assert set(users()) == {"airparadis_writer", "airparadis_grafana"}
    writer, grafana = users()["airparadis_writer"], users()["airparadis_grafana"]
    assert grants(writer) == [
        "GRANT SELECT, INSERT ON airparadis.*",
        *(f"GRANT ALTER DELETE ON airparadis.{table}" for table in ERASABLE),
    ]
    assert grants(grafana) == ["GRANT SELECT ON airparadis.*"]
    assert grafana.findtext("profile") == "airparadis_grafana"
    for user in users().values():
        assert user.findtext("access_management") == "0"


def test_passwords_come_from_the_environment_compose_gives_the_server() -> None:
    environment = clickhouse_service()["environment"]
    assert isinstance(environment, dict)
    assert environment["CLICKHOUSE_DB"] == "airparadis"  # the database the grants name
    for name, user in users().items():
        password = user.find("password")
        assert password is not None and not (password.text or "").strip(), name
        assert password.get("from_env") in environment, name


def test_grants_parse_as_clickhouse_sql(tmp_path: Path) -> None:
    store = ChdbStore(tmp_path / "chdb")
    try:
        for name, user in users().items():
            for grant in grants(user):
                sql = f"{grant} TO {name}".replace("'", "\\'")
                formatted = store.query(f"SELECT formatQuery('{sql}') AS q")[0]["q"]
                assert formatted == f"{grant} TO {name}"
        with pytest.raises(StorageError, match=r"(?i)syntax"):
            store.query("SELECT formatQuery('GRANT SELECT ON airparadis.* TO') AS q")
    finally:
        store.close()


# --- against a real server ---

ADMIN = "airparadis_admin"
# The tables `airparadis data forget` deletes from (shared/privacy.py), as the writer.
ERASABLE = ("predictions", "feedback", "alerts")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tls` volume's files. Compose's one-shot runs as root and gives the key to group 101
    (clickhouse); a test runner is not root, so here the key is left readable to the server."""
    tls = tmp_path_factory.mktemp("tls")
    ensure_certificates(
        tls, tmp_path_factory.mktemp("authority"), ["clickhouse"], ["localhost", "127.0.0.1"]
    )
    (tls / "clickhouse").chmod(0o755)
    (tls / "clickhouse" / SERVER_KEY).chmod(0o644)
    return tls


@pytest.fixture(scope="module")
def clickhouse(certificates: Path) -> Iterator[dict[str, str]]:
    """URLs of each user of a ClickHouse server configured as compose configures it."""
    require_docker()
    from testcontainers.core.container import DockerContainer

    passwords = {name: uuid.uuid4().hex for name in ("admin", "writer", "grafana")}
    container = (
        DockerContainer(CLICKHOUSE_IMAGE)
        .with_env("CLICKHOUSE_DB", "airparadis")
        .with_env("CLICKHOUSE_USER", ADMIN)
        .with_env("CLICKHOUSE_PASSWORD", passwords["admin"])
        .with_env("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "0")
        .with_env("CLICKHOUSE_WRITER_PASSWORD", passwords["writer"])
        .with_env("CLICKHOUSE_GRAFANA_PASSWORD", passwords["grafana"])
        .with_volume_mapping(USERS_XML, f"/etc/clickhouse-server/users.d/{USERS_XML.name}")
        .with_volume_mapping(TLS_XML, f"/etc/clickhouse-server/config.d/{TLS_XML.name}")
        .with_volume_mapping(certificates, "/tls")
        .with_exposed_ports(8123, 8443)
    )
    with container:
        host = f"localhost:{container.get_exposed_port(8443)}"
        wait_http(f"https://{host}/ping", context=client_context(certificates / "ca.crt", "CA"))
        urls = {
            "admin": f"https://{ADMIN}:{passwords['admin']}@{host}/airparadis",
            "writer": f"https://airparadis_writer:{passwords['writer']}@{host}/airparadis",
            "grafana": f"https://airparadis_grafana:{passwords['grafana']}@{host}/airparadis",
            "plain": f"http://localhost:{container.get_exposed_port(8123)}/airparadis",
        }
        admin = _open_when_ready(urls["admin"], certificates / "ca.crt")
        try:
            apply_migrations(admin, retention_days=30)
        finally:
            admin.close()
        yield urls


def _open_when_ready(url: str, ca_file: Path, within: float = 60.0) -> ServerStore:
    """The server answers /ping while its entrypoint may still be setting the users up."""
    deadline = time.monotonic() + within
    while True:
        try:
            return ServerStore(url, ca_file=ca_file)
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture
def as_user(clickhouse: dict[str, str], certificates: Path) -> Iterator[dict[str, ServerStore]]:
    stores = {
        name: ServerStore(url, ca_file=certificates / "ca.crt")
        for name, url in clickhouse.items()
        if name != "plain"
    }
    yield stores
    for store in stores.values():
        store.close()


def alert_row() -> dict[str, object]:
    return {
        "id": uuid.uuid4().hex,
        "kind": "test",
        "raised_at": datetime.now(UTC),
        "summary": "a test alert",
        "details": "{}",
    }


def refused(store: ServerStore, sql: str) -> str:
    with pytest.raises(StorageError) as error:
        store.command(sql)
    return str(error.value)


@pytest.mark.integration
def test_writer_grants_are_select_insert_and_erasure_on_the_platform_database(
    as_user: dict[str, ServerStore],
) -> None:
    rows = as_user["writer"].query("SHOW GRANTS")
    assert sorted(next(iter(r.values())) for r in rows) == sorted(
        [
            "GRANT SELECT, INSERT ON airparadis.* TO airparadis_writer",
            *(f"GRANT ALTER DELETE ON airparadis.{t} TO airparadis_writer" for t in ERASABLE),
        ]
    )


@pytest.mark.integration
def test_writer_inserts_and_reads_but_cannot_change_the_schema(
    as_user: dict[str, ServerStore],
) -> None:
    writer = as_user["writer"]
    row = alert_row()
    writer.insert("alerts", [row])
    assert writer.query("SELECT count() AS n FROM alerts WHERE id = {id:String}", {"id": row["id"]})
    # What the store worker and the gateway do at start: the schema is up to date, nothing to do.
    assert apply_migrations(writer, retention_days=30) == []
    for sql in (
        "DROP TABLE alerts",
        "TRUNCATE TABLE predictions",
        "ALTER TABLE thresholds DELETE WHERE 1",
        "DELETE FROM schema_migrations WHERE 1",
        "DELETE FROM audit WHERE 1",  # the proof that requests were honoured stays
        "ALTER TABLE feedback UPDATE comment = '' WHERE 1",
        "ALTER TABLE predictions MODIFY TTL scored_at + INTERVAL 1 DAY",
        "CREATE TABLE airparadis.spy (x UInt8) ENGINE = Memory",
        "CREATE USER intruder",
    ):
        reason = refused(writer, sql)
        assert "ACCESS_DENIED" in reason or "Not enough privileges" in reason, (sql, reason)


@pytest.mark.integration
def test_grafana_user_reads_and_cannot_write(as_user: dict[str, ServerStore]) -> None:
    grafana = as_user["grafana"]
    rows = grafana.query("SHOW GRANTS")
    assert [next(iter(r.values())) for r in rows] == [
        "GRANT SELECT ON airparadis.* TO airparadis_grafana"
    ]
    assert grafana.query("SELECT count() AS n FROM predictions")[0]["n"] >= 0
    with pytest.raises(StorageError, match=r"(?i)readonly|ACCESS_DENIED|privileges"):
        grafana.insert("alerts", [alert_row()])
    reason = refused(grafana, "DROP TABLE alerts")
    assert "readonly" in reason.lower() or "ACCESS_DENIED" in reason


@pytest.mark.integration
def test_a_wrong_password_is_refused(clickhouse: dict[str, str], certificates: Path) -> None:
    url = clickhouse["writer"].replace("airparadis_writer:", "airparadis_writer:x", 1)
    with pytest.raises(StorageError):
        ServerStore(url, ca_file=certificates / "ca.crt")


@pytest.mark.integration
def test_only_https_is_served_and_only_with_the_stacks_certificate(
    clickhouse: dict[str, str], tmp_path: Path
) -> None:
    # The plain HTTP port is removed from the server's config: nothing answers there.
    with pytest.raises(StorageError):
        ServerStore(clickhouse["plain"], connect_timeout_s=3)
    # A client that trusts another authority refuses the server's certificate.
    stranger = tmp_path / "stranger"
    ensure_certificates(stranger, tmp_path / "stranger-authority", ["clickhouse"])
    with pytest.raises(StorageError, match=r"(?i)certificate verify failed"):
        ServerStore(clickhouse["writer"], ca_file=stranger / "ca.crt", connect_timeout_s=3)


@pytest.mark.integration
def test_writer_erases_rows_of_the_tables_that_hold_personal_data(
    as_user: dict[str, ServerStore],
) -> None:
    from shared.messages import DataSelector
    from shared.privacy import forget

    writer = as_user["writer"]
    row = alert_row() | {"summary": "quotes jane.doe.erasure@example.com"}
    writer.insert("alerts", [row])
    done = forget(writer, DataSelector(text_contains="jane.doe.erasure@"), "dpo", "test")
    assert done.alerts == 1
    left = writer.query(
        "SELECT count() AS n FROM alerts FINAL WHERE id = {id:String}", {"id": row["id"]}
    )
    assert left == [{"n": 0}]
