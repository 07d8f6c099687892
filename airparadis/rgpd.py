"""The processing register (docs/rgpd.md): the parts that come from the settings and the code
(what text is kept, how long each table, stream and bucket keeps it) are generated, so the
register cannot drift from what runs.

    python -m airparadis.rgpd render            # rewrite the generated parts of docs/rgpd.md
    python -m airparadis.rgpd render --check    # exit 1 when they are out of date
    python -m airparadis.rgpd render --environment --output register.md
                                                # this deployment's figures (AIRPARADIS_*, .env)

The prose around them (purposes, legal basis, recipients, rights) is written by hand; each
generated part sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->`. The committed
register shows the default settings. A ClickHouse table or a stream that the register does not
describe stops the rendering: describe it below first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from airparadis.bus_init import alerter_bucket_ttl_s
from services.gateway.context import RECENT_PREDICTIONS
from shared import subjects
from shared.bus import Streams
from shared.settings import Settings
from shared.storage import MIGRATIONS_DIR, load_migrations, split_statements

REGISTER = Path(__file__).resolve().parents[1] / "docs" / "rgpd.md"
_BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end: \2 -->)", re.DOTALL)


class RegisterError(ValueError):
    """The register cannot be rendered: the message says what to describe or fix."""


@dataclass(frozen=True)
class Holding:
    """What a table or stream holds, for the register: in words, and the personal data in it."""

    holds: str
    personal: str


# Every ClickHouse table the migrations create (infra/clickhouse/).
TABLES: dict[str, Holding] = {
    "predictions": Holding(
        "every scored tweet: its text, its features (length, words, URLs, mentions, hashtags, "
        "emojis), its detected language, the score, label, threshold and model version, its "
        "source",
        "the tweet's text",
    ),
    "feedback": Holding(
        "wrong-prediction reports: the correct label, the comment, the prediction as served",
        "the comment and the tweet's text",
    ),
    "alerts": Holding(
        "alerts raised and emailed; a wrong-predictions alert quotes its reports (tweet cut "
        "at 80 characters, comment)",
        "the quoted tweets and comments",
    ),
    "thresholds": Holding("live precision estimates and the thresholds applied", "none"),
    "shadow_predictions": Holding(
        "the challenger's score of each tweet the champion scored (shadow scoring): the "
        "prediction's id, version, score and label, no text",
        "none (no text: an erased prediction leaves its id and scores here, which name no one)",
    ),
    "drift_reference": Holding(
        "binned distributions of each model version's validation set", "none (aggregates)"
    ),
    "operating_curve": Holding(
        "true- and false-positive rates of each version per threshold", "none (aggregates)"
    ),
    "audit": Holding(
        "erasure and access requests: who asked, when, what (a searched text only as its "
        "SHA-256 and length), how many rows",
        "the requester's user name",
    ),
    "api_keys": Holding(
        "API keys: a name, scopes, a SHA-256 of the key (never the key), creation, revocation "
        "and last use",
        "the key's name when it names a person",
    ),
    "refusals": Holding(
        "requests the rate limits refused (429), summed per gateway, window of about "
        "`AIRPARADIS_REFUSALS_FLUSH_S`, limit, kind of bucket and key name; never the client "
        "address",
        "the key's name when it names a person",
    ),
    "schema_migrations": Holding("the migrations applied", "none"),
}

_TEXT = {
    "full": "as written",
    "scrubbed": "scrubbed",
    "none": "scrubbed",
}


def stream_holdings(settings: Settings) -> dict[str, Holding]:
    """What each JetStream stream holds under these settings."""
    mode = settings.text_storage
    purge = (
        f"removed once processed (checked every {settings.ingress_purge_s} s)"
        if mode != "full"
        else "kept like the rest"
    )
    return {
        subjects.STREAM_TWEETS: Holding(
            "tweets submitted (by the gateway, already scrubbed unless `full`, or by upstream "
            "apps as written), preprocessed and scored",
            f"tweet texts: tweets.submitted of upstream apps as written, {purge}; "
            f"tweets.preprocessed and tweets.scored {_TEXT[mode]}",
        ),
        subjects.STREAM_FEEDBACK: Holding(
            "wrong-prediction reports",
            f"comments and tweet texts: from the gateway {_TEXT[mode]}, from upstream apps as "
            f"written, {purge}",
        ),
        subjects.STREAM_ALERTS: Holding(
            "alerts, before they are emailed and stored",
            "quoted tweets and comments, "
            + ("none (text not kept)" if mode == "none" else _TEXT[mode]),
        ),
        subjects.STREAM_MODELS: Holding("model promotions and thresholds", "none"),
        subjects.STREAM_GATEWAY: Holding(
            "the gateways' summaries of the requests their rate limits refused",
            "API key names (never a client address), as in the refusals table",
        ),
        subjects.STREAM_DLQ: Holding(
            "messages no worker could process, with the reason",
            f"the first {settings.dead_letter_keep_bytes:,} bytes of each, "
            + ("as sent" if mode == "full" else "scrubbed (their raw bytes are not kept)"),
        ),
    }


MODES = {
    "full": "tweets and comments are kept as written",
    "scrubbed": "e-mail addresses, phone numbers, URL paths and queries and @handles other "
    "than the airline's own are replaced by placeholders before anything is stored or emailed",
    "none": "no text is stored (empty); the model still reads the scrubbed text on the bus",
}


def table_retention(retention_days: int) -> dict[str, str]:
    """Each table the migrations create, with its TTL in words ("none" without one), read from
    the migrations as they are filled in for `retention_days`."""
    values = {"database": "db", "retention_days": str(retention_days), "fsync": "1"}
    created = re.compile(r"CREATE TABLE IF NOT EXISTS db\.(\w+)")
    altered = re.compile(r"ALTER TABLE db\.(\w+) MODIFY TTL")
    ttl = re.compile(r"\bTTL (\w+) \+ INTERVAL (\d+) DAY")
    kept: dict[str, str] = {}
    for migration in load_migrations(MIGRATIONS_DIR, values):
        for statement in split_statements(migration.sql):
            table = created.search(statement) or altered.search(statement)
            if table is None:
                continue
            name = table.group(1)
            found = ttl.search(statement)
            if found:
                kept[name] = f"{found.group(2)} days after `{found.group(1)}`"
            else:
                kept.setdefault(name, "no TTL")
    return kept


def _days(seconds: float) -> str:
    days = seconds / 86_400
    return f"{days:g} days" if days >= 1 else f"{seconds:g} s"


def settings_block(settings: Settings) -> str:
    dlq_mb = settings.dlq_max_mb
    rows = [
        (
            "Text kept",
            f"`{settings.text_storage}`: {MODES[settings.text_storage]}",
            "AIRPARADIS_TEXT_STORAGE",
        ),
        (
            "The airline's own handles (kept by the scrubber)",
            ", ".join(f"@{handle}" for handle in settings.own_handles),
            "AIRPARADIS_OWN_HANDLES",
        ),
        (
            "Rows of predictions, reports, alerts, thresholds and refusals",
            f"{settings.retention_days} days",
            "AIRPARADIS_RETENTION_DAYS",
        ),
        (
            "Messages on the bus",
            f"{settings.stream_max_age_days} days",
            "AIRPARADIS_STREAM_MAX_AGE_DAYS",
        ),
        (
            "Ingress messages of upstream apps, once processed",
            f"removed within {settings.ingress_purge_s} s"
            if settings.text_storage != "full"
            else f"kept {settings.stream_max_age_days} days (text_storage is full)",
            "AIRPARADIS_INGRESS_PURGE_S",
        ),
        (
            "Dead letters",
            f"at most {settings.dlq_max_messages:,} and {dlq_mb} MiB, the first "
            f"{settings.dead_letter_keep_bytes:,} bytes of each, {settings.stream_max_age_days} "
            "days",
            "AIRPARADIS_DLQ_MAX_MESSAGES, AIRPARADIS_DLQ_MAX_MB, AIRPARADIS_DEAD_LETTER_KEEP_BYTES",
        ),
    ]
    return _table(
        ["What", "Kept", "Setting"],
        [[a, b, ", ".join(f"`{name}`" for name in c.split(", "))] for a, b, c in rows],
    )


def tables_block(settings: Settings) -> str:
    kept = table_retention(settings.retention_days)
    undescribed = sorted(set(kept) - set(TABLES))
    if undescribed:
        raise RegisterError(
            f"tables the register does not describe: {undescribed}; add them to TABLES in "
            "airparadis/rgpd.py (what they hold, what personal data)"
        )
    return _table(
        ["Table", "Holds", "Personal data", "Kept"],
        [[f"`{name}`", TABLES[name].holds, TABLES[name].personal, kept[name]] for name in kept],
    )


def streams_block(settings: Settings) -> str:
    holdings = stream_holdings(settings)
    undescribed = sorted(set(subjects.STREAMS) - set(holdings))
    if undescribed:
        raise RegisterError(f"streams the register does not describe: {undescribed}")
    rows = []
    for stream in Streams(settings).all():
        config = stream.config
        limits = [_days(float(config.max_age or 0))]
        if config.max_msgs and config.max_msgs > 0:
            limits.append(f"at most {config.max_msgs:,} messages")
        if config.max_bytes and config.max_bytes > 0:
            limits.append(f"{config.max_bytes // (1024 * 1024)} MiB")
        holding = holdings[stream.name]
        rows.append(
            [
                f"`{stream.name}` ({', '.join(f'`{s}`' for s in subjects.STREAMS[stream.name])})",
                holding.holds,
                holding.personal,
                ", ".join(limits),
            ]
        )
    rows.append(
        [
            f"KV bucket `{subjects.KV_ALERTER}`",
            "the alerter's sliding window of reports and its last alert",
            "quoted tweets and comments, as in alerts",
            f"{_days(alerter_bucket_ttl_s(settings))} after the last change of a key",
        ]
    )
    rows.append(
        [
            "the gateway's memory",
            "the predictions it served lately (feedback and retries need not wait for the store)",
            f"tweet texts, {_TEXT[settings.text_storage]}",
            f"the last {RECENT_PREDICTIONS:,}, until a restart; an erasure removes them",
        ]
    )
    return _table(["Where", "Holds", "Personal data", "Kept"], rows)


GENERATED = {
    "settings": settings_block,
    "tables": tables_block,
    "streams": streams_block,
}


def render(text: str, settings: Settings) -> str:
    """`text` with every generated part rendered for `settings`."""
    found = {match.group(2) for match in _BLOCK.finditer(text)}
    missing = sorted(set(GENERATED) - found)
    if missing:
        raise RegisterError(f"the register lacks the generated parts {missing}")

    def block(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in GENERATED:
            raise RegisterError(f"unknown generated part {name!r}; known: {sorted(GENERATED)}")
        return f"{match.group(1)}{GENERATED[name](settings)}\n{match.group(4)}"

    return _BLOCK.sub(block, text)


def default_settings() -> Settings:
    """The settings' defaults alone, whatever the environment says."""
    return Settings.model_construct()


def outdated(path: Path = REGISTER) -> bool:
    text = path.read_text(encoding="utf-8")
    return render(text, default_settings()) != text


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


app = typer.Typer(help="The processing register, docs/rgpd.md.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """The processing register, docs/rgpd.md."""


@app.command("render")
def render_command(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if docs/rgpd.md is out of date; write nothing.")
    ] = False,
    environment: Annotated[
        bool,
        typer.Option(
            "--environment",
            help="Use this deployment's settings (AIRPARADIS_*, .env) instead of the defaults.",
        ),
    ] = False,
    output: Annotated[
        Path | None, typer.Option(help="Where to write (default: docs/rgpd.md itself).")
    ] = None,
) -> None:
    """Rewrite the generated parts of the register from the settings and the code."""
    try:
        if check:
            if outdated():
                typer.echo(f"{REGISTER} is out of date: run python -m airparadis.rgpd render")
                raise typer.Exit(1)
            typer.echo(f"{REGISTER} is up to date")
            return
        settings = Settings() if environment else default_settings()
        rendered = render(REGISTER.read_text(encoding="utf-8"), settings)
    except RegisterError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error
    target = output or REGISTER
    target.write_text(rendered, encoding="utf-8")
    typer.echo(f"wrote {target}")


if __name__ == "__main__":
    app()
