"""`airparadis data forget / export`: the right to erasure and access (shared/privacy.py).

While the platform runs, its store worker is the one process that writes ClickHouse (in the
embedded mode, the one that may open the chDB folder at all): the command asks it over NATS
(rpc.store.forget, rpc.store.export), it runs and audits the request, and tells the gateways to
drop erased predictions from their memory. When no store worker answers, the command does the
work itself on the store the settings name: chDB in the home folder (the platform is stopped),
or the ClickHouse server of AIRPARADIS_CLICKHOUSE_URL. With a remote bus and no ClickHouse URL
(the compose `trainer`), only the store worker can: the command says so.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from rich.console import Console

from shared import subjects
from shared.messages import (
    DataExported,
    DataForgotten,
    DataSelector,
    ExportRequested,
    ForgetRequested,
    RequestFailed,
)
from shared.settings import Settings
from shared.storage import StorageError, Store

T = TypeVar("T")
console = Console(stderr=True)
app = typer.Typer(
    help="Personal data: erase it (forget) or show what is held (export); each request audited.",
    no_args_is_help=True,
)

# An erasure of a year of predictions rewrites many parts: give it time.
REQUEST_TIMEOUT_S = 300.0
VIA = "command"

ForgetAnswer: TypeAdapter[DataForgotten | RequestFailed] = TypeAdapter(
    Annotated[DataForgotten | RequestFailed, Field(discriminator="kind")]
)
ExportAnswer: TypeAdapter[DataExported | RequestFailed] = TypeAdapter(
    Annotated[DataExported | RequestFailed, Field(discriminator="kind")]
)

ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who asks, for the audit (default: the user running the command)."),
]

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data folder of the embedded mode. Default: AIRPARADIS_HOME."),
]


class DataRequestError(RuntimeError):
    """The request could not be carried out; the message says why and what to do."""


def parse_before(value: str, now: datetime | None = None) -> datetime:
    """A --before value: a date (midnight UTC) or an ISO date and time (UTC when it has no
    offset), not in the future."""
    text = value.strip()
    try:
        moment = (
            datetime.combine(date.fromisoformat(text), datetime.min.time())
            if len(text) == 10
            else datetime.fromisoformat(text.replace("Z", "+00:00"))
        )
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date: give 2026-01-31 or 2026-01-31T12:00:00+01:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > (now or datetime.now(UTC)):
        raise typer.BadParameter(
            f"{value} is in the future: that would erase everything stored until now"
        )
    return moment


def requester(by: str | None) -> str:
    if by is not None and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): say so in the audit
        return "unknown user"


def carry_out(
    settings: Settings,
    subject: str,
    request: BaseModel,
    answers: TypeAdapter[T],
    directly: Callable[[Store], T],
) -> tuple[T, str]:
    """The answer of the running store worker, else of `directly` on the store; and who did it."""
    from shared.bus import reachable_bus_url

    url = reachable_bus_url(settings)
    if url is not None:
        reply = asyncio.run(_ask(settings, url, subject, request))
        if reply is not None:
            try:
                return answers.validate_json(reply), f"the store worker (through {url})"
            except ValidationError as error:
                raise DataRequestError(
                    f"unreadable answer from the store worker: {error}"
                ) from error
        if settings.nats_url and not settings.clickhouse_url:
            raise DataRequestError(
                f"no store worker answered on {url}, and without AIRPARADIS_CLICKHOUSE_URL only "
                "it can reach the store: start it (docker compose up -d store) and try again"
            )
    return _on_the_store(settings, directly), "this command, on the store directly"


async def _ask(settings: Settings, url: str, subject: str, request: BaseModel) -> bytes | None:
    """The store worker's answer; None when no store worker listens."""
    import nats
    import nats.errors
    from nats.errors import NoRespondersError

    from shared.bus import nats_credentials

    try:
        nc = await nats.connect(
            url,
            **nats_credentials(settings),
            connect_timeout=2,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
    except (OSError, nats.errors.Error) as error:
        if settings.nats_url:
            raise DataRequestError(f"cannot reach NATS at {url}: {error}") from error
        return None  # the embedded server just stopped: nobody runs the store
    try:
        reply = await nc.request(
            subject, request.model_dump_json().encode(), timeout=REQUEST_TIMEOUT_S
        )
    except NoRespondersError:
        return None
    except TimeoutError as error:
        raise DataRequestError(
            f"the store worker did not answer within {REQUEST_TIMEOUT_S:g} s; it may still be "
            "working: see its log and the audit table before asking again"
        ) from error
    finally:
        await nc.close()
    data: bytes = reply.data
    return data


def _on_the_store(settings: Settings, work: Callable[[Store], T]) -> T:
    from shared.storage import ChdbStore, apply_migrations, open_store

    try:
        store = open_store(settings)
    except StorageError as error:
        raise DataRequestError(
            f"{error}\nIf the platform is starting, wait for its store worker and try again; "
            "else stop the process that holds the folder"
            if not settings.clickhouse_url
            else str(error)
        ) from error
    try:
        if isinstance(store, ChdbStore):  # the command owns the folder: bring it up to date
            apply_migrations(store, settings.retention_days)
        return work(store)
    finally:
        store.close()


def _failed(answer: RequestFailed) -> DataRequestError:
    return DataRequestError(f"the store worker refused ({answer.kind}): {answer.reason}")


@app.command()
def forget(
    prediction: Annotated[
        str | None, typer.Option("--prediction", help="The id of a prediction (and its reports).")
    ] = None,
    text_contains: Annotated[
        str | None,
        typer.Option(
            "--text-contains",
            help="Every prediction, report and alert whose text holds this (case-insensitive).",
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Everything stored before this date (2026-01-31, UTC)."),
    ] = None,
    by: ByOption = None,
    home: HomeOption = None,
) -> None:
    """Erase personal data from ClickHouse: the predictions chosen, the reports about them and
    the alerts quoting them; print how many of each. Audited (table `audit`)."""
    from shared import privacy

    given = [option for option in (prediction, text_contains, before) if option is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --prediction, --text-contains or --before")
    try:
        selector = DataSelector(
            prediction_id=prediction,
            text_contains=text_contains,
            before=parse_before(before) if before is not None else None,
        )
    except ValidationError as error:
        raise typer.BadParameter(_reasons(error)) from None
    actor = requester(by)
    request = ForgetRequested(selector=selector, requested_by=actor)
    settings = _settings(home)
    with _request_errors("Nothing erased"):
        answer, where = carry_out(
            settings,
            subjects.STORE_FORGET,
            request,
            ForgetAnswer,
            lambda store: privacy.forget(store, selector, actor, VIA),
        )
        if isinstance(answer, RequestFailed):
            raise _failed(answer)
    for table in ("predictions", "feedback", "alerts"):
        typer.echo(f"{table}\t{getattr(answer, table)}")
    console.print(f"erased by {where}; audit {answer.audit_id} (by {actor})")
    if prediction is not None and not (answer.predictions or answer.feedback or answer.alerts):
        console.print(
            f"[red]Nothing held for prediction {prediction!r}:[/red] never stored, expired or "
            "erased already"
        )
        raise typer.Exit(1)


@app.command()
def export(
    prediction: Annotated[str, typer.Option("--prediction", help="The id of a prediction.")],
    by: ByOption = None,
    home: HomeOption = None,
) -> None:
    """Print, as JSON, everything held about a prediction: its row, the reports about it and
    the alerts that quote them. Audited (table `audit`)."""
    from shared import privacy

    actor = requester(by)
    try:
        request = ExportRequested(prediction_id=prediction, requested_by=actor)
    except ValidationError as error:
        raise typer.BadParameter(_reasons(error)) from None
    settings = _settings(home)
    with _request_errors("Nothing exported"):
        answer, where = carry_out(
            settings,
            subjects.STORE_EXPORT,
            request,
            ExportAnswer,
            lambda store: privacy.export(store, prediction, actor, VIA),
        )
        if isinstance(answer, RequestFailed):
            raise _failed(answer)
    console.print(f"exported by {where}; audit {answer.audit_id} (by {actor})")
    if answer.empty:
        console.print(
            f"[red]Nothing held for prediction {prediction!r}:[/red] never stored, expired or "
            "erased"
        )
        raise typer.Exit(1)
    held: dict[str, Any] = answer.model_dump(include={"prediction", "feedback", "alerts"})
    typer.echo(json.dumps({"prediction_id": prediction, **held}, indent=2, ensure_ascii=False))


@contextmanager
def _request_errors(failed: str) -> Iterator[None]:
    """Errors a user can act on end the command with their reason, not a traceback."""
    try:
        yield
    except (DataRequestError, StorageError, OSError) as error:
        console.print(f"[red]{failed}:[/red] {error}")
        raise typer.Exit(1) from error


def _settings(home: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"home": home}) if home is not None else settings


def _reasons(error: ValidationError) -> str:
    reasons = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        what = str(problem["msg"]).removeprefix("Value error, ")
        reasons.append(f"{where}: {what}" if where else what)
    return "; ".join(reasons)
