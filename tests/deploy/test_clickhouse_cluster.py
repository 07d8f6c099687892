"""compose.yaml's `cluster` profile on real images: ClickHouse Keeper and two ClickHouse replicas
with the repository's config files (infra/clickhouse/cluster/), then `airparadis migrate
--cluster airparadis` on the first replica.

Skipped, with the reason, where no Docker engine answers (GitHub Actions runs it, in the
`containers` job). Without Docker, tests/unit/test_cluster_migrations.py checks the statements
and tests/deploy/test_compose.py the wiring; tests/integration/test_storage_cluster.py runs the
storage contract on this same cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airparadis.cli import app
from shared.storage import (
    MIGRATIONS_DIR,
    MigrationError,
    ServerStore,
    apply_migrations,
    load_migrations,
)
from tests.deploy.containers import CLUSTER, ClickHouseCluster, clickhouse_cluster

pytestmark = pytest.mark.integration

ALL_MIGRATIONS = [
    m.version
    for m in load_migrations(MIGRATIONS_DIR, {"database": "d", "retention_days": "1", "fsync": "1"})
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseCluster]:
    with clickhouse_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def migrate(cluster: ClickHouseCluster, home: Path) -> str:
    """`airparadis migrate --cluster airparadis` as the migrate one-shot runs it."""
    result = CliRunner().invoke(
        app,
        ["migrate", "--cluster", CLUSTER, "--home", str(home)],
        env={
            "AIRPARADIS_CLICKHOUSE_URL": cluster.url("clickhouse"),
            "AIRPARADIS_CLICKHOUSE_TLS_CA": str(cluster.ca_file),
        },
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def migrated(cluster: ClickHouseCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrate(cluster, tmp_path_factory.mktemp("home"))


@pytest.fixture
def stores(cluster: ClickHouseCluster, migrated: str) -> Iterator[dict[str, ServerStore]]:
    """admin and writer on each replica: `admin@clickhouse`, `writer@clickhouse-2`..."""
    opened = {
        f"{user}@{replica}": ServerStore(cluster.url(replica, user), ca_file=cluster.ca_file)
        for replica in cluster.hosts
        for user in ("admin", "writer")
    }
    yield opened
    for store in opened.values():
        store.close()


def tables(store: ServerStore) -> dict[str, str]:
    rows = store.query(
        "SELECT name, engine FROM system.tables WHERE database = 'airparadis' ORDER BY name"
    )
    return {row["name"]: row["engine"] for row in rows}


def test_migrate_creates_every_table_replicated_on_both_replicas(
    stores: dict[str, ServerStore], migrated: str
) -> None:
    first, second = tables(stores["admin@clickhouse"]), tables(stores["admin@clickhouse-2"])

    assert {"schema_migrations", "predictions", "feedback", "alerts", "refusals"} <= set(first)
    assert first == second
    assert {name: engine.startswith("Replicated") for name, engine in first.items()} == {
        name: True for name in first
    }
    assert stores["admin@clickhouse-2"].query("SELECT getMacro('replica') AS r") == [
        {"r": "clickhouse-2"}
    ]
    # The ledger is replicated too: the second replica knows what the first applied.
    stores["admin@clickhouse-2"].command("SYSTEM SYNC REPLICA airparadis.schema_migrations")
    ledger = stores["admin@clickhouse-2"].query(
        "SELECT version FROM airparadis.schema_migrations FINAL ORDER BY version"
    )
    assert sorted(row["version"] for row in ledger) == sorted(ALL_MIGRATIONS)


def test_migrate_again_applies_nothing_and_workers_find_nothing_to_do(
    cluster: ClickHouseCluster, migrated: str, stores: dict[str, ServerStore], tmp_path: Path
) -> None:
    assert "nothing (schema up to date)" in migrate(cluster, tmp_path)
    # The store worker runs the runner at start as the writer, which has no DDL grant.
    stores["admin@clickhouse-2"].command("SYSTEM SYNC REPLICA airparadis.schema_migrations")
    for replica in cluster.hosts:
        assert apply_migrations(stores[f"writer@{replica}"], 365, cluster=CLUSTER) == []


@pytest.mark.parametrize(
    ("written", "read"), [("clickhouse", "clickhouse-2"), ("clickhouse-2", "clickhouse")]
)
def test_a_row_inserted_on_one_replica_is_read_on_the_other(
    stores: dict[str, ServerStore], written: str, read: str
) -> None:
    row = {
        "id": uuid.uuid4().hex,
        "kind": "test",
        "raised_at": datetime.now(UTC),
        "summary": f"written on {written}",
        "details": "{}",
    }
    stores[f"writer@{written}"].insert("alerts", [row])

    stores[f"admin@{read}"].command("SYSTEM SYNC REPLICA airparadis.alerts")
    found = stores[f"writer@{read}"].query(
        "SELECT summary FROM alerts FINAL WHERE id = {id:String}", {"id": row["id"]}
    )
    assert found == [{"summary": f"written on {written}"}]


def test_a_database_migrated_for_one_server_is_not_turned_into_a_cluster(
    cluster: ClickHouseCluster, migrated: str
) -> None:
    database = f"single_{uuid.uuid4().hex[:8]}"
    store = ServerStore(cluster.url("clickhouse", database=database), ca_file=cluster.ca_file)
    try:
        apply_migrations(store, 365)
        with pytest.raises(MigrationError, match="migrated for one server"):
            apply_migrations(store, 365, cluster=CLUSTER)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        store.close()
