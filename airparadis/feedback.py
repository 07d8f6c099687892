"""`airparadis feedback export`: the reports that carry a correct label, as training data
(training/feedback.py), read from ClickHouse the way airparadis/stores.py reaches it: a server,
the chDB folder, or the store worker of the running platform.

    airparadis feedback export --out reports.csv
    airparadis train simple --extra-data reports.csv
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from airparadis.stores import command_store
from shared.settings import Settings
from shared.storage import StorageError

if TYPE_CHECKING:
    from training.feedback import FeedbackExport

app = typer.Typer(
    help="Wrong-prediction reports: export those with a correct label as training data.",
    no_args_is_help=True,
)
console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data folder of the embedded mode. Default: AIRPARADIS_HOME."),
]


def default_export_path(settings: Settings, now: datetime | None = None) -> Path:
    """Where an export goes unless told: <home>/feedback/feedback-<UTC time>.csv."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return settings.home.resolve() / "feedback" / f"feedback-{moment}.csv"


def export_feedback(settings: Settings, out: Path) -> tuple[FeedbackExport, str]:
    """Write the reports with a correct label to out as training rows; the export and where the
    reports were read. FeedbackError when there is no platform or nothing to write."""
    # Here, not at the top: pandas would slow every other command's start.
    from training.feedback import FeedbackError, read_labelled_reports, training_rows, write_export

    if not settings.clickhouse_url and not settings.chdb_path.exists():
        raise FeedbackError(
            f"no platform data in {settings.home.resolve()}: nothing was stored with this home. "
            "Run the command where `airparadis up` runs, or give --home DIR (or "
            "AIRPARADIS_HOME, or AIRPARADIS_CLICKHOUSE_URL for a ClickHouse server)"
        )
    with command_store(settings) as (store, where):
        export = training_rows(read_labelled_reports(store))
    if export.written == 0:
        if export.without_text:
            raise FeedbackError(
                f"the {export.without_text:,} reported predictions with a correct label have no "
                "stored text (AIRPARADIS_TEXT_STORAGE=none when they were stored): nothing to "
                "train on"
            )
        raise FeedbackError(
            f"no report with a correct label yet in {where}: report wrong predictions with one "
            '(POST /v1/feedback {"prediction_id": "…", "correct_label": "negative"}, or the '
            "web page) and export again"
        )
    write_export(export, out)
    return export, where


def describe(export: FeedbackExport, out: Path, where: str) -> str:
    """What an export did, in one sentence: written, de-duplicated, skipped."""
    return (
        f"wrote {export.written:,} training rows to {out} from {export.reports:,} reports with "
        f"a correct label in {where}; {export.duplicates:,} earlier reports of a prediction "
        f"reported again left out (the latest counts), {export.without_text:,} skipped for "
        "want of a stored text"
    )


@app.command("export")
def export(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where the CSV goes (target,text,reported_at,model_version,prediction_id). "
            "Default: <home>/feedback/feedback-<UTC time>.csv.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write the reported tweets that carry a correct label, as training data: one row per
    prediction (its latest report), the text as stored (scrubbed by default), target 0
    negative or 4 positive as in Sentiment140, with reported_at and the model_version that
    was wrong. Prints the file's path on stdout.

    Train on it with `airparadis train simple --extra-data FILE`, or let
    `airparadis retrain --family simple` do both.
    """
    settings = Settings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    target = out or default_export_path(settings)
    from training.feedback import FeedbackError

    try:
        exported, where = export_feedback(settings, target)
    except (FeedbackError, StorageError, OSError) as error:
        console.print(f"[red]Nothing exported:[/red] {error}")
        raise typer.Exit(1) from error
    console.print(describe(exported, target, where))
    typer.echo(str(target))
