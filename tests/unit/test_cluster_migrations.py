"""`airparadis migrate --cluster`: the migrations of infra/clickhouse/ in their replicated form.

Without a cluster here, every real migration statement is rewritten and both forms go through
ClickHouse's own parser (chDB's formatQuery): the cluster form parses, and once formatted it is
the single-server form plus ON CLUSTER and the replicated engine, nothing else. A recording
store shows which statements the runner sends in each mode. The cluster itself (Keeper and two
replicas) runs in tests/deploy/test_clickhouse_cluster.py, with Docker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from airparadis.cli import app
from shared.settings import Settings
from shared.storage import (
    MIGRATIONS_DIR,
    ChdbStore,
    MigrationError,
    apply_migrations,
    load_migrations,
    replicated_statement,
    split_statements,
)

CLUSTER = "airparadis"
VALUES = {"database": "airparadis", "retention_days": "365", "fsync": "1"}
MIGRATIONS = load_migrations(MIGRATIONS_DIR, VALUES)
STATEMENTS = [
    pytest.param(statement, id=f"{m.version}-{number}")
    for m in MIGRATIONS
    for number, statement in enumerate(split_statements(m.sql), start=1)
]
CREATES = [s for m in MIGRATIONS for s in split_statements(m.sql) if s.startswith("CREATE")]
ENGINE_LINE = re.compile(r"^ENGINE = (\w+)(?:\((.*)\))?$", re.MULTILINE)


@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    store = ChdbStore(tmp_path_factory.mktemp("chdb"))
    yield store
    store.close()


def formatted(parser: ChdbStore, sql: str) -> str:
    """The statement as ClickHouse's parser reads it back (a syntax error raises)."""
    text: str = parser.query("SELECT formatQuery({sql:String}) AS q", {"sql": sql})[0]["q"]
    return text


def single_server_form(cluster_form: str) -> str:
    """A formatted cluster statement with ON CLUSTER and the replicated engine taken back out."""
    text = cluster_form.replace(f" ON CLUSTER {CLUSTER}", "", 1)
    if text.startswith("ALTER"):
        assert text.endswith("\nSETTINGS alter_sync = 2"), text
        text = text.removesuffix("\nSETTINGS alter_sync = 2")

    def unreplicated(match: re.Match[str]) -> str:
        engine, arguments = match.group(1), match.group(2)
        assert engine.startswith("Replicated"), engine
        path, replica, *rest = [a.strip() for a in arguments.split(",")]
        assert re.fullmatch(r"'/clickhouse/tables/\{shard\}/airparadis/\w+'", path), path
        assert replica == "'{replica}'"
        bare = engine.removeprefix("Replicated")
        return f"ENGINE = {bare}({', '.join(rest)})" if rest else f"ENGINE = {bare}"

    return ENGINE_LINE.sub(unreplicated, text)


@pytest.mark.parametrize("statement", STATEMENTS)
def test_every_migration_statement_parses_in_its_cluster_form_and_differs_only_by_it(
    parser: ChdbStore, statement: str
) -> None:
    cluster_form = formatted(parser, replicated_statement(statement, CLUSTER))

    assert f" ON CLUSTER {CLUSTER}" in cluster_form.splitlines()[0]
    assert single_server_form(cluster_form) == formatted(parser, statement)


def test_every_table_is_replicated_and_the_ledger_too() -> None:
    tables = {}
    for statement in CREATES:
        name = re.match(r"CREATE TABLE IF NOT EXISTS airparadis\.(\w+)", statement)
        assert name is not None, statement
        tables[name.group(1)] = replicated_statement(statement, CLUSTER)
    assert {"schema_migrations", "predictions", "feedback", "alerts"} <= set(tables)
    for name, sql in tables.items():
        assert "ENGINE = ReplicatedReplacingMergeTree(" in sql, name
        assert f"'/clickhouse/tables/{{shard}}/airparadis/{name}', '{{replica}}'" in sql


def test_the_version_column_of_a_replacing_table_stays_its_last_argument() -> None:
    [ledger] = [s for s in CREATES if ".schema_migrations" in s]

    cluster_form = replicated_statement(ledger, CLUSTER)

    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/airparadis/schema_migrations',"
        " '{replica}', applied_at)"
    ) in cluster_form
    assert cluster_form.endswith("ORDER BY version")


def test_an_alter_runs_on_the_cluster_and_waits_for_every_replica() -> None:
    sql = "ALTER TABLE airparadis.predictions MODIFY TTL scored_at + INTERVAL 30 DAY"
    assert replicated_statement(sql, CLUSTER) == (
        "ALTER TABLE airparadis.predictions ON CLUSTER airparadis "
        "MODIFY TTL scored_at + INTERVAL 30 DAY SETTINGS alter_sync = 2"
    )


def test_parentheses_inside_quotes_do_not_end_the_columns() -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS d.t (a String DEFAULT ')(', b UInt8) "
        "ENGINE = MergeTree ORDER BY a"
    )
    assert replicated_statement(sql, CLUSTER) == (
        "CREATE TABLE IF NOT EXISTS d.t ON CLUSTER airparadis (a String DEFAULT ')(', b UInt8)\n"
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}') ORDER BY a"
    )


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CREATE TABLE IF NOT EXISTS d.t (a UInt8) ENGINE = Memory", "engine Memory"),
        (
            "CREATE TABLE IF NOT EXISTS d.t (a UInt8) ENGINE = SummingMergeTree(a) ORDER BY a",
            "Summing",
        ),
        ("CREATE TABLE IF NOT EXISTS d.t (a UInt8) ORDER BY a", "no ENGINE"),
        ("CREATE TABLE d.t (a UInt8) ENGINE = MergeTree ORDER BY a", "only CREATE TABLE IF NOT"),
        ("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree ORDER BY a", "only CREATE"),
        ("CREATE VIEW IF NOT EXISTS d.v AS SELECT 1", "only CREATE"),
        ("DROP TABLE d.t", "only CREATE"),
        ("INSERT INTO d.t VALUES (1)", "only CREATE"),
        ("ALTER TABLE d.t ON CLUSTER other DROP COLUMN a", "already in a cluster form"),
        ("ALTER TABLE d.t DELETE WHERE 1 SETTINGS mutations_sync = 2", "its own SETTINGS"),
        (
            "CREATE TABLE IF NOT EXISTS d.t (a UInt8) ENGINE = ReplicatedMergeTree ORDER BY a",
            "already in a cluster form",
        ),
        ("CREATE TABLE IF NOT EXISTS d.t (a UInt8 ENGINE = MergeTree", "unbalanced"),
    ],
)
def test_a_statement_or_engine_the_rewrite_does_not_know_is_refused(sql: str, reason: str) -> None:
    with pytest.raises(MigrationError, match=re.escape(reason)):
        replicated_statement(sql, CLUSTER)


def test_a_cluster_name_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid cluster name"):
        replicated_statement("ALTER TABLE d.t DROP COLUMN a", "air paradis; DROP")


# --- what the runner sends ---


class RecordingStore:
    """A store whose database holds what `tables` says; records the statements it is sent."""

    def __init__(self, engine: str | None = None, ledger: Mapping[str, str] | None = None):
        self.engine = engine  # schema_migrations' engine, None: no such table
        self.ledger = dict(ledger or {})
        self.commands: list[str] = []
        self.inserted: list[dict[str, Any]] = []

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self.commands.append(sql)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if "currentDatabase() AS db" in sql:
            return [{"db": "airparadis"}]
        if sql.startswith("SELECT engine FROM system.tables"):
            return [{"engine": self.engine}] if self.engine else []
        if sql.startswith("SELECT count() AS n FROM system.tables"):
            return [{"n": int(self.engine is not None)}]
        if "FROM schema_migrations" in sql:
            return [{"version": v, "checksum": c} for v, c in self.ledger.items()]
        raise AssertionError(f"unexpected query {sql}")

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        assert table == "schema_migrations"
        self.inserted.extend({k: v for k, v in row.items() if k != "applied_at"} for row in rows)

    def close(self) -> None:
        pass


def test_one_server_gets_the_migration_files_statements_unchanged() -> None:
    store = RecordingStore()

    apply_migrations(store, 365)

    assert store.commands == [s for m in MIGRATIONS for s in split_statements(m.sql)]


def test_a_cluster_gets_its_database_then_every_statement_on_the_cluster() -> None:
    single, clustered = RecordingStore(), RecordingStore()
    apply_migrations(single, 365)

    applied = apply_migrations(clustered, 365, cluster=CLUSTER)

    assert applied == [m.version for m in MIGRATIONS]
    assert clustered.commands[0] == "CREATE DATABASE IF NOT EXISTS airparadis ON CLUSTER airparadis"
    assert clustered.commands[1:] == [replicated_statement(s, CLUSTER) for s in single.commands]
    # The ledger is the same in both forms: a worker started without the setting agrees with it.
    assert clustered.inserted == single.inserted


def test_a_cluster_whose_schema_is_up_to_date_is_sent_nothing() -> None:
    # The store worker runs the runner at start as a user without DDL grants.
    done = RecordingStore()
    apply_migrations(done, 365)
    ledger = {row["version"]: row["checksum"] for row in done.inserted}
    store = RecordingStore(engine="ReplicatedReplacingMergeTree", ledger=ledger)

    assert apply_migrations(store, 365, cluster=CLUSTER) == []
    assert store.commands == []


def test_a_database_migrated_for_one_server_is_not_turned_into_a_cluster() -> None:
    store = RecordingStore(engine="ReplacingMergeTree", ledger={"001_init": "x"})

    with pytest.raises(MigrationError, match="migrated for one server"):
        apply_migrations(store, 365, cluster=CLUSTER)
    assert store.commands == []


def test_the_cluster_setting_is_a_name_and_empty_means_one_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRPARADIS_CLICKHOUSE_CLUSTER", "")  # compose's ${...:-}
    assert Settings().clickhouse_cluster is None
    monkeypatch.setenv("AIRPARADIS_CLICKHOUSE_CLUSTER", CLUSTER)
    assert Settings().clickhouse_cluster == CLUSTER
    with pytest.raises(ValidationError):
        Settings(clickhouse_cluster="air paradis; DROP")


def test_migrate_on_a_cluster_needs_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRPARADIS_CLICKHOUSE_URL", raising=False)
    result = CliRunner().invoke(app, ["migrate", "--home", str(tmp_path), "--cluster", CLUSTER])
    assert result.exit_code == 2
    assert "--cluster needs a ClickHouse server" in result.output
