"""`airparadis keys`: create, list and revoke the API keys of the gateway (shared/keys.py).

The keys live in ClickHouse (`api_keys`), reached as airparadis/stores.py says: a ClickHouse
server directly, the chDB folder, or, while `airparadis up` runs and its store worker holds that
folder, the store worker on the bus (rpc.store.query and rpc.store.insert).

    airparadis keys create --name crm --scope predict --scope feedback
    airparadis keys list
    airparadis keys revoke crm
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from airparadis.stores import command_store
from shared.keys import SCOPE_HELP, ApiKeyError, KeyRing
from shared.settings import Settings
from shared.storage import StorageError

app = typer.Typer(
    help="API keys of the gateway: create (shown once), list, revoke.", no_args_is_help=True
)
console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data folder of the embedded mode. Default: AIRPARADIS_HOME."),
]
SCOPES_TEXT = "; ".join(f"{scope}: {routes}" for scope, routes in SCOPE_HELP.items())


def _settings(home: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"home": home}) if home is not None else settings


@contextmanager
def key_ring(settings: Settings) -> Iterator[tuple[KeyRing, str]]:
    """The key ring of the platform these settings name, and where it is."""
    with command_store(settings) as (store, where):
        yield KeyRing(store), where


@contextmanager
def _user_errors(failed: str) -> Iterator[None]:
    try:
        yield
    except (ApiKeyError, StorageError) as error:
        console.print(f"[red]{failed}:[/red] {error}")
        raise typer.Exit(1) from error


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else ""


@app.command("create")
def create(
    name: Annotated[
        str, typer.Option("--name", help="Who uses it (crm, comms-team…): names one key for good.")
    ],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"What it may do, repeatable. {SCOPES_TEXT}."),
    ],
    home: HomeOption = None,
) -> None:
    """Create an API key and print it (stdout, once: only its hash is kept)."""
    settings = _settings(home)
    with _user_errors("No key created"), key_ring(settings) as (ring, where):
        issued = ring.create(name, scope)
    key = issued.key
    console.print(
        f"API key [bold]{key.name}[/bold] (id {key.key_id}, scopes {', '.join(key.scopes)}) "
        f"stored in {where}. Copy it now, it is not shown again; send it as "
        "'Authorization: Bearer <key>'."
    )
    typer.echo(issued.secret)


@app.command("list")
def list_keys(home: HomeOption = None) -> None:
    """Every key: name, id, scopes, created, last used (a scored tweet or a report), revoked."""
    settings = _settings(home)
    with _user_errors("Keys not listed"), key_ring(settings) as (ring, where):
        keys = ring.list()
    table = Table(title=f"API keys ({where})")
    for column in ("name", "id", "scopes", "created", "last used", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.name,
            key.key_id,
            ", ".join(key.scopes),
            _when(key.created_at),
            _when(key.last_used_at),
            _when(key.revoked_at),
        )
    out = Console()
    (out if out.is_terminal else Console(width=200)).print(table)


@app.command("revoke")
def revoke(
    name_or_id: Annotated[str, typer.Argument(help="The key's name or id (see `keys list`).")],
    home: HomeOption = None,
) -> None:
    """Revoke a key: every gateway refuses it from its next request on."""
    settings = _settings(home)
    with _user_errors("Not revoked"), key_ring(settings) as (ring, _):
        key = ring.revoke(name_or_id)
    console.print(f"API key {key.name} (id {key.key_id}) revoked at {_when(key.revoked_at)}")
