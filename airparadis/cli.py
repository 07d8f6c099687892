"""The `airparadis` command: run the platform, its workers, training and the model registry."""

from __future__ import annotations

import asyncio
from datetime import datetime
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


train_app = typer.Typer(
    help="Train a model family and register it in MLflow.", no_args_is_help=True
)
models_app = typer.Typer(
    help="The model registry: list and promote versions.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")


@train_app.command("simple")
def train_simple_command(
    data: DataOption = None,
    home: HomeOption = None,
    sample: Annotated[
        int | None, typer.Option(help="Balanced sample size (default AIRPARADIS_TRAIN_SAMPLE).")
    ] = None,
    promote_it: Annotated[
        bool, typer.Option("--promote", help="Make the new version the champion.")
    ] = False,
) -> None:
    """TF-IDF + logistic regression, threshold chosen for the target precision."""
    from airparadis.bootstrap import train_baseline

    settings = load_settings(home, data=data)
    result = train_baseline(settings, settings.data, sample)
    console.print(
        f"{result.model_name} v{result.version} ({result.candidate}): "
        f"test precision {result.test_at_threshold['precision']:.3f}, recall "
        f"{result.test_at_threshold['recall']:.3f} at threshold {result.threshold.threshold:.3f}; "
        f"accuracy {result.test_at_default['accuracy']:.3f} and ROC AUC "
        f"{result.test_at_default['roc_auc']:.3f} at 0.5"
    )
    if promote_it:
        _promote(settings, result.version)


@models_app.command("list")
def models_list(home: HomeOption = None) -> None:
    """Every registered version with its aliases and threshold."""
    from rich.table import Table

    from shared.models import registry_client

    settings = load_settings(home)
    client = registry_client(settings.tracking_uri)
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    table = Table(title=f"{settings.model_name} ({settings.tracking_uri})")
    for column in ("version", "aliases", "family", "threshold", "created"):
        table.add_column(column)
    for v in sorted(versions, key=lambda v: int(v.version)):
        tags = dict(v.tags or {})
        table.add_row(
            str(v.version),
            ", ".join(v.aliases or []),
            tags.get("family", ""),
            tags.get("threshold", ""),
            datetime.fromtimestamp(v.creation_timestamp / 1000).isoformat(timespec="seconds"),
        )
    Console().print(table)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="Registered version to make the champion.")],
    home: HomeOption = None,
) -> None:
    """Make VERSION the champion (the former one becomes `previous`); running infer workers
    swap to it without restart."""
    _promote(load_settings(home), version)


def _promote(settings: Settings, version: str) -> None:
    from airparadis.announce import announce_promotion
    from training.registry import promote

    info = promote(settings.tracking_uri, settings.model_name, version)
    console.print(f"{info.name} v{info.version} is the champion")
    where = announce_promotion(settings, info.version)
    if where:
        console.print(f"announced on {where}: running infer workers swap to it")
    else:
        console.print("no NATS server reachable: workers will load it at their next start")
