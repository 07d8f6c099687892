"""The `airparadis` command: run the platform, its workers, training and the model registry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shared.logs import configure_logging
from shared.settings import Settings

app = typer.Typer(
    help="Air Paradis sentiment platform: will readers take a tweet as positive or negative?",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Sentiment140 CSV (original form or target,text; .gz/.zip ok). "
        "Default: AIRPARADIS_DATA, else download the official archive.",
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data folder of the embedded mode. Default: AIRPARADIS_HOME."),
]


def load_settings(home: Path | None = None, **overrides: object) -> Settings:
    settings = Settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        updates["home"] = home
    return settings.model_copy(update=updates) if updates else settings


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    plain_logs: Annotated[bool, typer.Option(help="Human-readable logs instead of JSON.")] = False,
) -> None:
    configure_logging(log_level, json_lines=not plain_logs)


@app.command()
def up(
    data: DataOption = None,
    home: HomeOption = None,
    port: Annotated[int | None, typer.Option(help="Gateway port (default 8000).")] = None,
) -> None:
    """Run everything on this machine: nats-server, chDB, MLflow on SQLite, workers, gateway."""
    from airparadis.embedded import up as run_up

    settings = load_settings(home, http_port=port, data=data)
    run_up(settings, settings.data)


@app.command()
def worker(
    names: Annotated[
        list[str], typer.Argument(help="Workers to run: preprocess, infer, store, alerter.")
    ],
    home: HomeOption = None,
) -> None:
    """Run some workers against AIRPARADIS_NATS_URL (compose mode: one container each)."""
    from airparadis.embedded import run
    from airparadis.wiring import WORKERS

    unknown = sorted(set(names) - set(WORKERS))
    if unknown:
        raise typer.BadParameter(f"unknown worker(s) {unknown}; choose from {list(WORKERS)}")
    settings = load_settings(home)
    asyncio.run(run(settings, tuple(n for n in WORKERS if n in names), with_gateway=False))  # type: ignore[misc]


@app.command()
def gateway(
    home: HomeOption = None,
    port: Annotated[int | None, typer.Option(help="Gateway port (default 8000).")] = None,
) -> None:
    """Run only the HTTP gateway against AIRPARADIS_NATS_URL."""
    from airparadis.embedded import run

    asyncio.run(run(load_settings(home, http_port=port), (), with_gateway=True))


@app.command()
def migrate(home: HomeOption = None) -> None:
    """Apply the ClickHouse migrations (idempotent)."""
    from shared.storage import apply_migrations, open_store

    settings = load_settings(home)
    store = open_store(settings)
    try:
        applied = apply_migrations(store, settings.retention_days)
    finally:
        store.close()
    console.print(f"applied: {applied or 'nothing (schema up to date)'}")
