"""ClickHouse storage: one small `Store` interface, two backends, the migration runner, and the
typed repository the workers use.

Backends speak the same SQL, with server-side query parameters (`{name:Type}`):
- `ChdbStore`: the ClickHouse engine in-process (chDB), data in a local folder (embedded, tests);
- `ServerStore`: a ClickHouse server over HTTP with clickhouse-connect (compose, production).
`open_store` is the one place that chooses between them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from shared.messages import (
    AlertRaised,
    FeedbackReported,
    LanguageGuess,
    PredictionSnapshot,
    RequestsRefused,
    ShadowScored,
    ThresholdSet,
    TweetScored,
)
from shared.scrub import TextPolicy
from shared.settings import Settings
from shared.tls import client_context

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "airparadis"
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "infra" / "clickhouse"

Table = Literal["predictions", "feedback", "alerts", "thresholds", "shadow_predictions", "refusals"]
TABLES: frozenset[str] = frozenset(
    {"predictions", "feedback", "alerts", "thresholds", "shadow_predictions", "refusals"}
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Arrow results: the same Python types from both backends (tz-aware datetimes, ints, str).
_CHDB_CONNECTION_SETTINGS = "output_format_arrow_string_as_string=1"
_MUST_ESCAPE = frozenset("\\'`\t\n")


class StorageError(RuntimeError):
    """A storage call failed; the message says which call and why."""


class MigrationError(StorageError):
    """The migration files cannot be read or applied."""


class Store(Protocol):
    """What the platform needs from ClickHouse. Implementations are thread-safe."""

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing useful (DDL, ALTER, DELETE); `{name:Type}`
        placeholders take their value from `parameters`."""
        ...

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query; `{name:Type}` placeholders take their value from `parameters`."""
        ...

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows given as column -> Python value (datetimes are stored in UTC)."""
        ...

    def close(self) -> None:
        """Release the connection; later calls fail."""
        ...


# --- Values on the wire: the one place where Python values become ClickHouse text ---


def as_utc(moment: datetime) -> datetime:
    """The same instant as a tz-aware UTC datetime; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _datetime_text(moment: datetime) -> str:
    # DateTime64 parses this form; it refuses an offset suffix, hence UTC without one.
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _datetime_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__}: {value!r}")


def bind_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters in the form both backends send alike: datetimes as UTC text to the
    microsecond, dates as ISO text, booleans as 0/1. Values travel apart from the SQL text
    (server-side binding); each backend then writes them in ClickHouse's escaped text form."""
    bound: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        if isinstance(value, datetime | date):
            bound[name] = _wire_value(value)
        elif isinstance(value, bool):
            bound[name] = int(value)
        elif value is None or isinstance(value, str | int | float):
            bound[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            bound[name] = list(value)  # an Array(String)
        else:
            raise TypeError(f"parameter {name}: unsupported type {type(value).__name__}")
    return bound


def _escaped_parameter(value: Any) -> Any:
    # ClickHouse reads a parameter value as escaped text (as in TabSeparated): a raw tab or
    # newline ends it and a backslash starts an escape. clickhouse-connect escapes for the
    # server; chDB takes the text as given, so ChdbStore escapes the same way.
    if value is None:
        return "\\N"
    if isinstance(value, list):  # Array(String): read as its literal, quoted strings inside
        return "[" + ",".join("'" + _quoted(item) + "'" for item in value) + "]"
    if isinstance(value, str):
        return "".join("\\" + char if char in _MUST_ESCAPE else char for char in value)
    return value


def _quoted(text: str) -> str:
    """The inside of a quoted string literal."""
    return (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def encode_json_each_row(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows in ClickHouse's JSONEachRow format (one JSON object a line): both backends insert
    this same text, so a row means the same thing on either."""
    return "\n".join(json.dumps(row, ensure_ascii=False, default=_wire_value) for row in rows)


def arrow_file_rows(data: bytes) -> list[dict[str, Any]]:
    """Rows of a result in Arrow IPC file form (b"": none)."""
    import pyarrow as pa

    if not data:
        return []
    return _arrow_rows(pa.ipc.open_file(pa.py_buffer(data)).read_all())


def _arrow_rows(table: Any) -> list[dict[str, Any]]:
    """Rows of an Arrow result, every timestamp tz-aware (a client may strip UTC's zone)."""
    import pyarrow as pa

    fields = [
        pa.field(field.name, pa.timestamp(field.type.unit, tz="UTC"), field.nullable)
        if pa.types.is_timestamp(field.type) and field.type.tz is None
        else field
        for field in table.schema
    ]
    rows: list[dict[str, Any]] = table.cast(pa.schema(fields)).to_pylist()
    return rows


def _identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid {what} name {name!r}: letters, digits and _ only")
    return name


# --- Backends ---


class ChdbStore:
    """The ClickHouse engine in-process (chDB), data in a local folder.

    What chDB 4.4 (engine 26.9) allows, checked by experiment:
    - One process hosts ONE embedded engine bound to ONE folder. Any number of connections to
      that folder may be open at once, each with its own current database; opening another
      folder fails until every connection to the first is closed (reopening costs ~70 ms).
      So: one chDB folder per process, and tests isolate by database name, not by folder.
    - Server-side parameters (`{name:Type}`) work as on a server, values read as escaped text
      (a raw tab, newline or backslash must be escaped) and datetimes sent as text without
      offset: `bind_parameters` and `_escaped_parameter` do both.
    - Calls block, and one connection must run one query at a time: a lock serialises them.
    """

    def __init__(
        self, path: Path, database: str = DEFAULT_DATABASE, *, read_only: bool = False
    ) -> None:
        # Imported here: the import starts the engine, which a server deployment never needs.
        from chdb.session import Session

        self.path = Path(path).resolve()
        self.database = _identifier(database, "database")
        self.read_only = read_only
        self._lock = threading.Lock()
        self.path.mkdir(parents=True, exist_ok=True)
        # readonly=1: no writes, no settings changed, no table functions (file(), url()).
        options = _CHDB_CONNECTION_SETTINGS + ("&readonly=1" if read_only else "")
        try:
            self._session: Any = Session(f"{self.path}?{options}")
        except Exception as error:
            holders = sorted({str(store.path) for store in ChdbStore.open_stores()})
            raise StorageError(
                f"cannot open chDB at {self.path}: {error}. A process can use one chDB folder "
                f"at a time: close the stores open on {holders or 'another folder'} first."
            ) from error
        try:
            # USE is per connection: each store keeps to its own database.
            if not read_only:
                self.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            self.command(f"USE {self.database}")
        except StorageError:
            self.close()
            raise
        _open_chdb_stores.add(self)
        log.info("chDB store open", extra={"path": str(self.path), "database": self.database})

    @staticmethod
    def open_stores() -> list[ChdbStore]:
        """The chDB stores of this process not closed yet (they pin the engine to their folder)."""
        return list(_open_chdb_stores)

    def _run(self, sql: str, output_format: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            if self._session is None:
                raise StorageError(f"chDB store at {self.path} is closed")
            try:
                return self._session.query(sql, output_format, params=parameters)
            except Exception as error:
                raise StorageError(f"chDB call failed: {error}") from error

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        bound = {name: _escaped_parameter(v) for name, v in bind_parameters(parameters).items()}
        self._run(sql, "CSV", bound or None)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return arrow_file_rows(self.query_arrow(sql, parameters))

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> bytes:
        """The result in Arrow IPC file form (b"" when there are no rows)."""
        bound = {name: _escaped_parameter(v) for name, v in bind_parameters(parameters).items()}
        result = self._run(sql, "Arrow", bound)
        return b"" if len(result) == 0 else bytes(result.bytes())

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        # No parameters are passed, so nothing in the data is read as a placeholder.
        body = encode_json_each_row(rows)
        self._run(f"INSERT INTO {_identifier(table, 'table')} FORMAT JSONEachRow\n{body}", "CSV")

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                _open_chdb_stores.discard(self)
                log.info("chDB store closed", extra={"path": str(self.path)})


_open_chdb_stores: weakref.WeakSet[ChdbStore] = weakref.WeakSet()


class ServerStore:
    """A ClickHouse server over HTTP(S): `http://user:password@host:8123/database`.

    The database named in the URL (default `airparadis`) is created if missing. The client
    runs without a ClickHouse session, which makes it safe to share between threads.
    """

    def __init__(
        self, url: str, *, ca_file: Path | None = None, connect_timeout_s: float = 10.0
    ) -> None:
        import clickhouse_connect

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "ClickHouse URL must be http(s)://[user:password@]host[:port]/database"
            )
        self.database = _identifier(unquote(parts.path.strip("/")) or DEFAULT_DATABASE, "database")
        port = f":{parts.port}" if parts.port else ""
        # The URL without credentials: the only form that goes into logs and errors.
        self.address = f"{parts.scheme}://{parts.hostname}{port}/{self.database}"
        self._closed = False
        tls: dict[str, Any] = {}
        if ca_file is not None and parts.scheme == "https":
            # Read once here for a clear error; clickhouse-connect then trusts only this CA.
            client_context(ca_file, "AIRPARADIS_CLICKHOUSE_TLS_CA")
            tls = {"verify": True, "ca_cert": str(ca_file)}
        try:
            self._client: Any = clickhouse_connect.get_client(
                dsn=urlunsplit(parts._replace(path="")),
                interface=parts.scheme,
                autogenerate_session_id=False,
                connect_timeout=connect_timeout_s,
                **tls,
            )
        except Exception as error:
            raise StorageError(
                f"cannot connect to ClickHouse at {self.address}: {error}"
            ) from error
        try:
            self._use_database()
        except StorageError:
            self.close()
            raise
        log.info("ClickHouse store open", extra={"address": self.address})

    def _use_database(self) -> None:
        # A user without the CREATE DATABASE grant still works on a database that exists.
        exists = self.query(
            "SELECT count() AS n FROM system.databases WHERE name = {name:String}",
            {"name": self.database},
        )
        if not exists[0]["n"]:
            self.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self._client.database = self.database

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        try:
            self._open_client().command(sql, parameters=bind_parameters(parameters) or None)
        except Exception as error:
            raise StorageError(f"ClickHouse command failed at {self.address}: {error}") from error

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            table = self._open_client().query_arrow(
                sql, parameters=bind_parameters(parameters), use_strings=True
            )
        except Exception as error:
            raise StorageError(f"ClickHouse query failed at {self.address}: {error}") from error
        return _arrow_rows(table)

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        body = encode_json_each_row(rows).encode("utf-8")
        try:
            self._open_client().raw_insert(
                _identifier(table, "table"), insert_block=body, fmt="JSONEachRow"
            )
        except Exception as error:
            raise StorageError(
                f"ClickHouse insert into {table} failed at {self.address}: {error}"
            ) from error

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()
            log.info("ClickHouse store closed", extra={"address": self.address})

    def _open_client(self) -> Any:
        # clickhouse-connect reconnects after close(); a closed store must fail as chDB's does.
        if self._closed:
            raise StorageError(f"ClickHouse store at {self.address} is closed")
        return self._client


def open_store(settings: Settings) -> Store:
    """The store the settings ask for: a ClickHouse server if `clickhouse_url` is set, else
    chDB in the home folder. The only place where the backend is chosen."""
    if settings.clickhouse_url:
        return ServerStore(settings.clickhouse_url, ca_file=settings.clickhouse_tls_ca)
    return ChdbStore(settings.chdb_path)


# --- Migrations ---

_NUMBERED = re.compile(r"(\d+)_\w+\.sql\Z")
_REPEATABLE = re.compile(r"R__\w+\.sql\Z")
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


@dataclass(frozen=True)
class Migration:
    """One migration file, filled in. A numbered one runs once; a repeatable one (`R__*.sql`)
    runs again whenever its filled-in text changes."""

    version: str
    source: str
    sql: str
    repeatable: bool

    @property
    def checksum(self) -> str:
        """What the ledger records: the file as written for a numbered migration (its filled-in
        text varies with the settings), the filled-in text for a repeatable one."""
        text = self.sql if self.repeatable else self.source
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_statements(script: str) -> list[str]:
    """Statements of a SQL script, split on `;` outside quotes, without `--` comments.
    (Over HTTP, ClickHouse runs one statement per call.)"""
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(script):
        char = script[i]
        if quote:
            current.append(char)
            if char == "\\" and i + 1 < len(script):
                current.append(script[i + 1])
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif script.startswith("--", i):
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
            continue
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current))
    return [statement.strip() for statement in statements if statement.strip()]


def load_migrations(directory: Path, values: Mapping[str, str]) -> list[Migration]:
    """The migrations in `directory`, numbered ones in order then repeatable ones, each with its
    `{placeholder}`s filled from `values`."""
    if not directory.is_dir():
        raise MigrationError(f"no migrations folder at {directory}")
    numbered: list[tuple[int, Path]] = []
    repeatable: list[Path] = []
    for path in directory.glob("*.sql"):
        if match := _NUMBERED.match(path.name):
            numbered.append((int(match.group(1)), path))
        elif _REPEATABLE.match(path.name):
            repeatable.append(path)
        else:
            raise MigrationError(f"{path.name}: migration names are NNN_name.sql or R__name.sql")
    ordered = [(path, False) for _, path in sorted(numbered)] + [
        (path, True) for path in sorted(repeatable)
    ]
    migrations = []
    for path, is_repeatable in ordered:
        source = path.read_text(encoding="utf-8")
        migrations.append(Migration(path.stem, source, _fill(path, source, values), is_repeatable))
    return migrations


def _fill(path: Path, source: str, values: Mapping[str, str]) -> str:
    sql = source
    for name, value in values.items():
        sql = sql.replace("{" + name + "}", value)
    if leftover := _PLACEHOLDER.search(sql):
        raise MigrationError(f"{path.name}: unknown placeholder {leftover.group()}")
    return sql


def apply_migrations(
    store: Store,
    retention_days: int,
    directory: Path | None = None,
    *,
    fsync: bool = True,
    cluster: str | None = None,
) -> list[str]:
    """Bring the store's database to the schema in `directory` (default infra/clickhouse/) and
    return the versions applied now. Safe at every start: what is applied is recorded in
    `schema_migrations`, and every statement is idempotent (IF NOT EXISTS). `fsync`: every
    insert reaches the disk before it returns (R__durability.sql). `cluster`: the statements run
    in their replicated form on every replica of that cluster (`replicated_statement`); the
    ledger records the same checksums as on one server."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, got {retention_days}")
    if cluster is not None:
        _identifier(cluster, "cluster")
    database = store.query("SELECT currentDatabase() AS db")[0]["db"]
    values = {
        "database": database,
        "retention_days": str(retention_days),
        "fsync": "1" if fsync else "0",
    }
    migrations = load_migrations(directory or MIGRATIONS_DIR, values)
    if cluster is not None:
        _refuse_single_server_schema(store, cluster)
        # Every statement is rewritten before any runs: one the rewrite refuses changes nothing.
        statements = {
            m.version: [replicated_statement(s, cluster) for s in split_statements(m.sql)]
            for m in migrations
        }
    else:
        statements = {m.version: split_statements(m.sql) for m in migrations}
    applied = _applied_checksums(store)
    done: list[str] = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded == migration.checksum:
            continue
        if recorded is not None and not migration.repeatable:
            log.warning(
                "migration changed after it was applied; add a new one instead",
                extra={"version": migration.version, "database": database},
            )
            continue
        if cluster is not None and not done:
            # Only when there is DDL to run: the workers' users, which run this at start with
            # the schema up to date, have no CREATE DATABASE grant.
            store.command(f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}")
        for statement in statements[migration.version]:
            store.command(statement)
        store.insert(
            "schema_migrations",
            [
                {
                    "version": migration.version,
                    "checksum": migration.checksum,
                    "applied_at": datetime.now(UTC),
                }
            ],
        )
        log.info("migration applied", extra={"version": migration.version, "database": database})
        done.append(migration.version)
    return done


def _applied_checksums(store: Store) -> dict[str, str]:
    ledger = store.query(
        "SELECT count() AS n FROM system.tables"
        " WHERE database = currentDatabase() AND name = 'schema_migrations'"
    )
    if not ledger[0]["n"]:
        return {}
    rows = store.query(
        "SELECT version, argMax(checksum, applied_at) AS checksum"
        " FROM schema_migrations GROUP BY version"
    )
    return {row["version"]: row["checksum"] for row in rows}


# --- Replicated tables: the same schema on every replica of a cluster ---

# A MergeTree engine and its replicated form, which takes the Keeper path and the replica's
# name first, then the same arguments (ReplacingMergeTree's version column).
REPLICATED_ENGINES: Mapping[str, str] = {
    "MergeTree": "ReplicatedMergeTree",
    "ReplacingMergeTree": "ReplicatedReplacingMergeTree",
}
# The replica's data in Keeper: one path per table and shard; {shard} and {replica} are the
# macros of each server's config (infra/clickhouse/cluster/).
KEEPER_PATH = "/clickhouse/tables/{{shard}}/{database}/{table}"
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*(?=\()")
_ENGINE = re.compile(r"\s*ENGINE\s*=\s*(\w+)(?:\(([^()]*)\))?")
_ALTER_TABLE = re.compile(r"ALTER TABLE (\w+\.\w+)\s+(?=\S)")


def replicated_statement(statement: str, cluster: str) -> str:
    """The form of one migration statement that runs on every replica of `cluster`:
    `CREATE TABLE IF NOT EXISTS db.t (...) ENGINE = ReplacingMergeTree(ver) ...` becomes
    `CREATE TABLE IF NOT EXISTS db.t ON CLUSTER cluster (...) ENGINE =
    ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', ver) ...`
    with the same columns, PARTITION BY, ORDER BY and TTL; `ALTER TABLE db.t ...` gains
    `ON CLUSTER cluster` and waits for every replica (alter_sync = 2). Any other statement or
    engine is refused with the reason: a
    migration this rewrite does not know must be taught to it, not guessed at."""
    _identifier(cluster, "cluster")
    if re.search(r"\bON\s+CLUSTER\b|\bReplicated\w*MergeTree\b", statement, re.IGNORECASE):
        raise MigrationError(f"already in a cluster form, not rewritten: {_head(statement)}")
    if match := _ALTER_TABLE.match(statement):
        if re.search(r"\bSETTINGS\b", statement, re.IGNORECASE):
            raise MigrationError(
                f"an ALTER with its own SETTINGS is not rewritten: {_head(statement)}"
            )
        # alter_sync = 2: a replicated ALTER (a column, a TTL) returns once every replica has
        # it, so the next statement or read on any replica sees it.
        return (
            f"ALTER TABLE {match.group(1)} ON CLUSTER {cluster} {statement[match.end() :]}"
            " SETTINGS alter_sync = 2"
        )
    if not (match := _CREATE_TABLE.match(statement)):
        raise MigrationError(
            "only CREATE TABLE IF NOT EXISTS db.table (...) and ALTER TABLE db.table have a "
            f"cluster form; refused: {_head(statement)}"
        )
    database, table = match.groups()
    columns_end = _closing_parenthesis(statement, match.end())
    engine = _ENGINE.match(statement, columns_end + 1)
    if engine is None:
        raise MigrationError(f"{database}.{table}: no ENGINE = after the columns")
    name, arguments = engine.groups()
    if name not in REPLICATED_ENGINES:
        raise MigrationError(
            f"{database}.{table}: engine {name} has no replicated form here "
            f"(known: {', '.join(REPLICATED_ENGINES)})"
        )
    path = KEEPER_PATH.format(database=database, table=table)
    replicated = [f"'{path}'", "'{replica}'"] + ([arguments.strip()] if arguments else [])
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} "
        f"{statement[match.end() : columns_end + 1]}\n"
        f"ENGINE = {REPLICATED_ENGINES[name]}({', '.join(replicated)})"
        f"{statement[engine.end() :]}"
    )


def _closing_parenthesis(sql: str, start: int) -> int:
    """Index of the `)` that closes the `(` at `start`, quoted text skipped."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(sql):
        char = sql[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise MigrationError(f"unbalanced parentheses: {_head(sql)}")


def _head(statement: str) -> str:
    return " ".join(statement.split())[:80]


def _refuse_single_server_schema(store: Store, cluster: str) -> None:
    """A database migrated for one server keeps its tables unreplicated: rewriting them is a
    data move (README, "Scaling out"), not a migration."""
    rows = store.query(
        "SELECT engine FROM system.tables"
        " WHERE database = currentDatabase() AND name = 'schema_migrations'"
    )
    if rows and not rows[0]["engine"].startswith("Replicated"):
        raise MigrationError(
            f"the database was migrated for one server ({rows[0]['engine']} tables): "
            f"`migrate --cluster {cluster}` creates replicated tables in a new database only"
        )


# --- Domain rows and repository ---


# --- Domain rows: what is written, text as the policy keeps it (the last guard before storage)


def prediction_row(event: TweetScored, policy: TextPolicy) -> dict[str, Any]:
    """A `predictions` row: the scored tweet with its text features flattened."""
    return {
        "id": event.id,
        # Scrubbed by preprocess already (tweets.scored only comes from there).
        "text": policy.past_ingress(event.text),
        "source": event.source,
        "label": event.label,
        "probability": event.probability,
        "threshold": event.threshold,
        "model_name": event.model_name,
        "model_version": event.model_version,
        "submitted_at": as_utc(event.submitted_at),
        "scored_at": as_utc(event.scored_at),
        "latency_ms": event.latency_ms,
        "batch_size": event.batch_size,
        "oov_rate": event.oov_rate,
        "key_name": event.key_name or "",
        **language_columns(event.language),
        "reliable": int(event.reliable),
        "reliability_note": event.reliability_note or "",
        **event.features.model_dump(),
    }


def language_columns(guess: LanguageGuess | None) -> dict[str, Any]:
    """The `predictions` columns of a tweet's language ('' where nothing was detected)."""
    if guess is None:
        return {"language": "", "language_confidence": 0.0, "language_status": ""}
    return {
        "language": guess.code or "",
        "language_confidence": guess.confidence,
        "language_status": guess.status,
    }


def language_guess(row: Mapping[str, Any]) -> LanguageGuess | None:
    """The LanguageGuess a `predictions` row keeps (None: stored before detection)."""
    if not row.get("language_status"):
        return None
    return LanguageGuess(
        code=row["language"] or None,
        confidence=round(float(row["language_confidence"]), 4),
        status=row["language_status"],
    )


def feedback_row(event: FeedbackReported, policy: TextPolicy) -> dict[str, Any]:
    """A `feedback` row: the report with a snapshot of the prediction it is about."""
    snapshot = event.prediction
    return {
        "id": event.id,
        "prediction_id": event.prediction_id,
        "correct_label": event.correct_label,
        "comment": policy.stored(event.comment or ""),
        "reported_at": as_utc(event.reported_at),
        "text": policy.stored(snapshot.text),
        "label": snapshot.label,
        "probability": snapshot.probability,
        "threshold": snapshot.threshold,
        "model_name": snapshot.model_name,
        "model_version": snapshot.model_version,
        "scored_at": as_utc(snapshot.scored_at),
        "key_name": event.key_name or "",
    }


def alert_row(event: AlertRaised, policy: TextPolicy) -> dict[str, Any]:
    """An `alerts` row: the details as a JSON string, the texts they quote as the policy keeps
    them."""
    return {
        "id": event.id,
        "kind": event.kind,
        "raised_at": as_utc(event.raised_at),
        "summary": event.summary,
        "details": json.dumps(
            policy.stored_details(event.details), ensure_ascii=False, default=str
        ),
    }


def shadow_row(event: ShadowScored) -> dict[str, Any]:
    """A `shadow_predictions` row: the challenger's score of a tweet, no text."""
    row = event.model_dump(exclude={"schema_version"})
    row["submitted_at"] = as_utc(event.submitted_at)
    row["scored_at"] = as_utc(event.scored_at)
    return row


def threshold_row(event: ThresholdSet) -> dict[str, Any]:
    """A `thresholds` row: the estimate and the threshold applied from then on (NaN where the
    event has None: nothing called positive, or the version's own threshold)."""
    row = event.model_dump(exclude={"schema_version"})
    row["estimated_at"] = as_utc(event.estimated_at)
    for column in ("precision", "precision_low", "precision_high", "threshold"):
        if row[column] is None:
            row[column] = float("nan")
    return row


def refusal_rows(event: RequestsRefused) -> list[dict[str, Any]]:
    """The `refusals` rows of a summary: one per limit, kind of bucket and key name."""
    return [
        {
            "id": event.id,
            "gateway": event.gateway,
            "window_start": as_utc(event.window_start),
            "window_end": as_utc(event.window_end),
            "rate_limit": count.limit,
            "who": count.who,
            "key_name": count.key_name,
            "refused": count.count,
        }
        for count in event.counts
    ]


RefusalCounts = frozenset[tuple[str, str, str, int]]


def refusal_counts(rows: Sequence[Mapping[str, Any]]) -> RefusalCounts:
    """What makes a summary the same summary: its (rate_limit, who, key_name, refused) rows."""
    return frozenset((r["rate_limit"], r["who"], r["key_name"], int(r["refused"])) for r in rows)


_GET_PREDICTION = """
SELECT text, label, probability, threshold, model_name, model_version, scored_at, latency_ms,
       language, language_confidence, language_status, reliable, reliability_note
FROM predictions FINAL
WHERE id = {id:String}
ORDER BY scored_at DESC
LIMIT 1
"""


# What makes an event the same event: a re-publish of its id with other values in these
# columns is another event trying to take the id, and is refused. (Under text_storage=none the
# text is "": the features still tell two tweets apart.) A refusals summary is several rows under
# one id: it is compared whole (stored_refusals).
IDENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "predictions": ("text", "source", "length", "n_words"),
    "feedback": ("prediction_id", "correct_label", "comment"),
    "alerts": ("kind", "summary"),
    "thresholds": ("model_version", "reason"),
    "shadow_predictions": ("prediction_id", "model_version"),
}


@dataclass(frozen=True)
class Sorted:
    """Rows of a batch sorted against what is stored: new ones, re-deliveries of stored ones
    (nothing to do), and ids taken by other content (with the reason to refuse them)."""

    new: list[int]
    already_stored: list[int]
    conflicts: dict[int, str]


class PredictionRepository:
    """Typed, async access to predictions, feedback and alerts. The store's calls block, so
    each runs in a worker thread. Times are stored to the millisecond, in UTC.

    Saving the same event twice (a redelivery) stores it once: reads deduplicate with FINAL.
    Text is saved as `policy` keeps it (text_storage).
    """

    def __init__(self, store: Store, policy: TextPolicy = TextPolicy()) -> None:
        self._store = store
        self.policy = policy

    @property
    def store(self) -> Store:
        """The store underneath, for the reporting queries (shared/panels.py, shared/drift.py)."""
        return self._store

    async def save_predictions(self, events: Sequence[TweetScored]) -> None:
        await self._insert("predictions", [prediction_row(e, self.policy) for e in events])

    async def save_feedback(self, events: Sequence[FeedbackReported]) -> None:
        await self._insert("feedback", [feedback_row(e, self.policy) for e in events])

    async def save_alerts(self, events: Sequence[AlertRaised]) -> None:
        await self._insert("alerts", [alert_row(e, self.policy) for e in events])

    async def sort_new(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> Sorted:
        """Compare a batch's rows with the stored ones of the same ids (and with each other)."""
        columns = IDENTITY_COLUMNS[table]
        ids = sorted({str(row["id"]) for row in rows})
        stored = await asyncio.to_thread(
            self._store.query,
            f"SELECT id, {', '.join(columns)} FROM {table} WHERE id IN {{ids:Array(String)}}"
            " LIMIT 1 BY id",
            {"ids": ids},
        )
        seen: dict[str, tuple[Any, ...]] = {
            row["id"]: tuple(row[c] for c in columns) for row in stored
        }
        new: list[int] = []
        again: list[int] = []
        conflicts: dict[int, str] = {}
        for index, row in enumerate(rows):
            identity = tuple(row[c] for c in columns)
            known = seen.get(row["id"])
            if known is None:
                seen[row["id"]] = identity
                new.append(index)
            elif known == identity:
                again.append(index)
            else:
                conflicts[index] = (
                    f"id {row['id']!r} is already stored in {table} with other content; "
                    "an id names one event for good"
                )
        return Sorted(new, again, conflicts)

    async def stored_refusals(self, ids: Sequence[str]) -> dict[str, RefusalCounts]:
        """The counts stored under each of these summary ids (ids not stored are left out)."""
        rows = await asyncio.to_thread(
            self._store.query,
            "SELECT id, rate_limit, who, key_name, refused FROM refusals"
            " WHERE id IN {ids:Array(String)}",
            {"ids": sorted(set(ids))},
        )
        by_id: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_id.setdefault(row["id"], []).append(row)
        return {summary: refusal_counts(found) for summary, found in by_id.items()}

    async def get_prediction(self, prediction_id: str) -> PredictionSnapshot | None:
        """The prediction as it was served, or None if it is unknown (or expired)."""
        rows = await asyncio.to_thread(self._store.query, _GET_PREDICTION, {"id": prediction_id})
        if not rows:
            return None
        row = rows[0]
        guess = language_guess(row)
        return PredictionSnapshot.model_validate(
            {
                **row,
                "language": guess,
                "reliable": bool(row["reliable"]),
                "reliability_note": row["reliability_note"] or None,
            }
        )

    async def count(self, table: Table) -> int:
        """Rows in the table, each event counted once however often it was inserted."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(TABLES)}")
        rows = await asyncio.to_thread(self._store.query, f"SELECT count() AS n FROM {table} FINAL")
        return int(rows[0]["n"])

    async def ping(self) -> bool:
        """Whether the store answers a trivial query (for health checks)."""
        try:
            rows = await asyncio.to_thread(self._store.query, "SELECT 1 AS ok")
        except Exception as error:
            log.warning("ClickHouse ping failed", extra={"reason": str(error)[:300]})
            return False
        return rows == [{"ok": 1}]

    async def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows built by prediction_row, feedback_row, alert_row, threshold_row or
        refusal_rows."""
        await self._insert(table, rows)

    async def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        await asyncio.to_thread(self._store.insert, table, rows)
        log.debug("rows stored", extra={"table": table, "rows": len(rows)})
