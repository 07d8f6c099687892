"""`airparadis score FILE`: score a whole file of draft tweets through the bus, as any upstream
app would, and write them back with their label.

Input: a CSV with a `text` column (other columns are kept), or JSON lines with a `text` field
(`.jsonl`, `.ndjson`). Output: the same rows, in the same order, with `id`, `label`,
`probability`, `threshold`, `model_version`, `language` (its code; empty when too short to tell),
`reliable` (false: a language the model did not learn, the label is a guess) and `error` added
(`error` says why a line could not be scored: blank, too long, refused by the pipeline).

Each line's id is derived from the file's content and the line number, so a run that stops
(Ctrl-C, a lost connection) resumes where it was: lines already in the output are kept, lines
the platform already scored are read back from ClickHouse instead of being scored again, and
re-published lines are dropped by JetStream's de-duplication. Every line is scored once.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tqdm.auto import tqdm

from shared import subjects
from shared.bus import MSG_ID_HEADER, make_broker
from shared.messages import TweetSubmitted
from shared.settings import Settings
from shared.storage import StorageError, Store, open_store
from shared.store_reads import BusStore

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)

ADDED = (
    "id",
    "label",
    "probability",
    "threshold",
    "model_version",
    "language",
    "reliable",
    "error",
)
JSON_LINES = {".jsonl", ".ndjson"}
SOURCE = "file"
IN_FLIGHT = 256
LOOKUP_CHUNK = 1000
QUIET_S = 1.0  # without an answer for this long, look the lines left up in ClickHouse

_STORED = """
SELECT id, label, probability, threshold, model_version, language, reliable
FROM predictions FINAL
WHERE id IN {ids:Array(String)}
"""


class ScoreFileError(ValueError):
    """A file that cannot be scored (or an output that does not belong to it); says why."""


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, among the data lines
    row: dict[str, Any]
    id: str


@dataclass
class ScoreReport:
    lines: int
    from_output: int = 0  # already in the output file (a resumed run)
    from_store: int = 0  # scored by an earlier run, read back from ClickHouse
    scored: int = 0  # scored now
    refused: int = 0  # with an error
    missing: list[int] = field(default_factory=list)  # line numbers not scored in time


def read_lines(path: Path) -> tuple[list[Line], list[str]]:
    """The data lines of a CSV or JSON-lines file with their ids, and the input's columns."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ScoreFileError(f"cannot read {path}: {error.strerror or error}") from error
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ScoreFileError(f"{path} is not UTF-8: {error}") from error
    rows, columns = _json_lines(path, text) if is_json_lines(path) else _csv_rows(path, text)
    lines = [Line(n, row, f"file-{digest}-{n}") for n, row in enumerate(rows, start=1)]
    return lines, columns


def is_json_lines(path: Path) -> bool:
    return path.suffix.lower() in JSON_LINES


def _csv_rows(path: Path, text: str) -> tuple[list[dict[str, Any]], list[str]]:
    reader = csv.DictReader(text.splitlines())
    columns = list(reader.fieldnames or [])
    if "text" not in columns:
        raise ScoreFileError(
            f"{path} has no `text` column (its header is {columns or 'empty'}): the tweets to "
            "score go in a column named text"
        )
    clash = sorted(set(columns) & set(ADDED))
    if clash:
        raise ScoreFileError(f"{path} already has the columns {clash} that scoring adds")
    return [dict(row) for row in reader], columns


def _json_lines(path: Path, text: str) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as error:
            raise ScoreFileError(f"{path}, line {number}: not JSON ({error})") from error
        if not isinstance(row, dict) or "text" not in row:
            raise ScoreFileError(f"{path}, line {number}: expected an object with a `text` field")
        rows.append(row)
        columns.update(dict.fromkeys(row))
    return rows, list(columns)


def done_in_output(out: Path, lines: list[Line]) -> dict[str, dict[str, Any]]:
    """Rows an earlier run of this file already wrote to `out`, by id; ScoreFileError when
    `out` holds another file's results."""
    if not out.exists():
        return {}
    text = out.read_text(encoding="utf-8")
    if is_json_lines(out):
        rows = [json.loads(raw) for raw in text.splitlines() if raw.strip()]
    else:
        rows = list(csv.DictReader(text.splitlines()))
    ours = {line.id for line in lines}
    foreign = [row.get("id") for row in rows if row.get("id") not in ours]
    if foreign:
        raise ScoreFileError(
            f"{out} holds results of another file (id {foreign[0]!r}): choose another --out, "
            "or delete it"
        )
    return {str(row["id"]): row for row in rows}


class OrderedWriter:
    """Appends finished rows to the output in input order, as soon as the next one is ready."""

    def __init__(self, out: Path, columns: list[str], lines: list[Line], written: int) -> None:
        self.out = out
        self.columns = [*columns, *ADDED]
        self.lines = lines
        self.next = written  # index of the next line to write
        self.ready: dict[int, dict[str, Any]] = {}
        new = not out.exists() or out.stat().st_size == 0
        self.stream = out.open("a", encoding="utf-8", newline="")
        self.csv = None
        if not is_json_lines(out):
            self.csv = csv.DictWriter(self.stream, fieldnames=self.columns, extrasaction="ignore")
            if new:
                self.csv.writeheader()

    def add(self, index: int, result: Mapping[str, Any]) -> None:
        self.ready[index] = {**self.lines[index].row, "id": self.lines[index].id, **result}
        while self.next in self.ready:
            row = self.ready.pop(self.next)
            if self.csv is not None:
                self.csv.writerow({key: row.get(key, "") for key in self.columns})
            else:
                self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.next += 1
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def result_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The columns scoring adds, from a TweetScored, a stored row, or a ScoringFailed."""
    if "label" not in answer:
        return {"error": str(answer.get("reason", "refused by the pipeline"))}
    language = answer.get("language")
    return {
        "label": answer["label"],
        "probability": answer["probability"],
        "threshold": answer["threshold"],
        "model_version": answer["model_version"],
        # A TweetScored carries a LanguageGuess (or None), a stored row its code.
        "language": (language.get("code") if isinstance(language, Mapping) else language) or "",
        "reliable": "true" if answer.get("reliable", True) else "false",
        "error": "",
    }


async def score_file(
    settings: Settings,
    path: Path,
    out: Path,
    *,
    timeout_s: float = 120.0,
    progress: bool | None = None,
    on_scored: Callable[[int], None] | None = None,
) -> ScoreReport:
    """Score every line of `path` into `out` through the running platform's bus."""
    lines, columns = read_lines(path)
    report = ScoreReport(len(lines))
    earlier = done_in_output(out, lines)
    report.from_output = len(earlier)
    # An earlier run wrote a prefix of the lines, in order.
    written = 0
    while written < len(lines) and lines[written].id in earlier:
        written += 1
    writer = OrderedWriter(out, columns, lines, written)
    todo = {i: line for i, line in enumerate(lines) if i >= written}
    bar = tqdm(
        total=len(lines),
        initial=written,
        unit="tweet",
        desc=f"score {path.name}",
        disable=not (sys.stderr.isatty() if progress is None else progress),
    )

    def finish(index: int, result: Mapping[str, Any]) -> None:
        if index not in todo:
            return  # a late second answer
        del todo[index]
        writer.add(index, result)
        report.refused += bool(result.get("error"))
        bar.update(1)
        if on_scored is not None:
            on_scored(index)

    broker = make_broker(settings)
    try:
        await broker.connect()
        nc: Client = broker.config.connection_state.connection
        store = (
            open_store(settings)
            if settings.clickhouse_url
            else BusStore(nc, asyncio.get_running_loop())
        )
        before = len(todo)
        await _read_back_stored(store, todo, finish)
        report.from_store = before - len(todo)
        before = len(todo)
        await _publish_and_wait(nc, store, todo, finish, timeout_s)
        report.scored = before - len(todo)
    finally:
        bar.close()
        writer.close()
        await broker.stop()
    report.missing = sorted(line.number for line in todo.values())
    return report


async def _read_back_stored(
    store: Store, todo: dict[int, Line], finish: Callable[[int, Mapping[str, Any]], None]
) -> None:
    by_id = {line.id: index for index, line in todo.items()}
    ids = list(by_id)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        try:
            rows = await asyncio.to_thread(store.query, _STORED, {"ids": chunk})
        except StorageError as error:
            log.warning("could not read back stored scores", extra={"reason": str(error)})
            return
        for row in rows:
            finish(by_id[str(row["id"])], result_of(row))


async def _publish_and_wait(
    nc: Client,
    store: Store,
    todo: dict[int, Line],
    finish: Callable[[int, Mapping[str, Any]], None],
    timeout_s: float,
) -> None:
    """Publish every line left (each with a reply subject of its own) and take the answers
    until all came or nothing came for `timeout_s`. A line an interrupted run had published
    is dropped as a duplicate and answers that run's inbox: each quiet second, what is left is
    looked up in ClickHouse instead."""
    inbox = f"{subjects.REPLY_PREFIX}.score.{uuid.uuid4().hex[:12]}"
    answered = asyncio.Event()

    async def on_answer(msg: Msg) -> None:
        answered.set()
        index = int(msg.subject.rsplit(".", 1)[1])
        try:
            finish(index, result_of(json.loads(msg.data)))
        except (ValueError, KeyError) as error:
            finish(index, {"error": f"unreadable answer: {error}"})

    subscription = await nc.subscribe(f"{inbox}.*", cb=on_answer)
    js = nc.jetstream()
    try:
        pending = sorted(todo.items())
        for start in range(0, len(pending), IN_FLIGHT):
            window = []
            for index, line in pending[start : start + IN_FLIGHT]:
                try:
                    tweet = TweetSubmitted(
                        id=line.id,
                        text=str(line.row.get("text") or ""),
                        source=SOURCE,
                        reply_to=f"{inbox}.{index}",
                    )
                except ValidationError as error:
                    finish(index, {"error": _reason(error)})
                    continue
                window.append(
                    js.publish(
                        subjects.TWEETS_SUBMITTED,
                        tweet.model_dump_json().encode(),
                        headers={MSG_ID_HEADER: tweet.id},
                    )
                )
            await asyncio.gather(*window)
        quiet = 0.0
        while todo and quiet < timeout_s:
            answered.clear()
            left = len(todo)
            try:
                await asyncio.wait_for(answered.wait(), QUIET_S)
            except TimeoutError:
                await _read_back_stored(store, todo, finish)
            quiet = 0.0 if len(todo) < left else quiet + QUIET_S
    finally:
        await subscription.unsubscribe()


def _reason(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.scored{path.suffix or '.csv'}")
