"""`airparadis score FILE` through the real pipeline: 3,000 lines scored into the output in
their order, the run interrupted half-way and resumed, every line scored once (in the output
and in ClickHouse), bad lines with their reason, and files that cannot be scored refused."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from airparadis.score import ScoreFileError, read_lines, score_file
from shared.settings import Settings
from tests.integration.platform import StartPlatform

pytestmark = pytest.mark.integration

LINES = 3000


def drafts(folder: Path, fixture: Path, n: int = LINES) -> Path:
    """A CSV of n drafts made from the fixture tweets, with a column of the user's own, a
    blank line and one far too long."""
    with fixture.open(encoding="utf-8") as source:
        texts = [row["text"] for row in csv.DictReader(source)]
    path = folder / "drafts.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["draft", "text"])
        for i in range(n):
            text = f"{texts[i % len(texts)]} #{i}"
            if i == 7:
                text = "   "
            if i == 11:
                text = "x" * 1500
            writer.writerow([f"d{i}", text])
    return path


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as source:
        return list(csv.DictReader(source))


async def test_a_file_interrupted_and_resumed_is_scored_once_line_by_line(
    start_platform: StartPlatform, platform_settings: Settings, airline_tweets: Path, tmp_path: Path
) -> None:
    path = drafts(tmp_path, airline_tweets)
    out = tmp_path / "drafts.scored.csv"
    async with start_platform() as platform:
        assert platform.store is not None
        half = asyncio.Event()
        scored = 0

        def count(_: int) -> None:
            nonlocal scored
            scored += 1
            if scored == LINES // 2:
                half.set()

        first = asyncio.create_task(
            score_file(platform_settings, path, out, progress=False, on_scored=count)
        )
        await asyncio.wait_for(half.wait(), timeout=120)
        first.cancel()  # Ctrl-C half-way
        with pytest.raises(asyncio.CancelledError):
            await first
        interrupted = len(rows_of(out))
        assert 0 < interrupted < LINES

        report = await score_file(platform_settings, path, out, progress=False, timeout_s=60)
        again = await score_file(platform_settings, path, out, progress=False, timeout_s=5)
        stored = platform.store.query(
            "SELECT count() AS n, uniqExact(id) AS ids FROM predictions WHERE source = 'file'"
        )

    rows = rows_of(out)
    assert report.missing == [] and report.lines == LINES
    assert report.from_output == interrupted
    assert report.from_output + report.from_store + report.scored == LINES
    assert again.from_output == LINES and again.scored == 0  # done: nothing scored twice
    assert [row["draft"] for row in rows] == [f"d{i}" for i in range(LINES)]  # input order
    assert len({row["id"] for row in rows}) == LINES
    good = [row for i, row in enumerate(rows) if i not in (7, 11)]
    assert all(row["label"] in {"positive", "negative"} and not row["error"] for row in good)
    assert all(0 <= float(row["probability"]) <= 1 and row["model_version"] for row in good)
    # The language too, whether the answer came from the bus or from ClickHouse on resume.
    assert all(row["reliable"] in {"true", "false"} for row in good)
    assert sum(row["language"] == "en" for row in good) >= len(good) // 2
    assert "empty" in rows[7]["error"] and rows[7]["label"] == ""
    assert "1000" in rows[11]["error"]
    # In ClickHouse too: every scorable line once, none twice.
    assert stored == [{"n": LINES - 2, "ids": LINES - 2}]


def test_json_lines_keep_their_fields(tmp_path: Path) -> None:
    path = tmp_path / "drafts.jsonl"
    path.write_text(
        json.dumps({"text": "Lovely crew", "channel": "x"}) + "\n\n" + json.dumps({"text": "Late"})
    )
    lines, columns = read_lines(path)
    assert [line.row for line in lines] == [
        {"text": "Lovely crew", "channel": "x"},
        {"text": "Late"},
    ]
    assert columns == ["text", "channel"]
    assert lines[0].id != lines[1].id and lines[0].id.startswith("file-")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("no-text.csv", "draft,body\n1,hello\n", "no `text` column"),
        ("clash.csv", "text,label\nhello,x\n", "already has the columns ['label']"),
        ("broken.jsonl", '{"text": "ok"}\n{not json\n', "line 2: not JSON"),
        ("latin1.csv", "text\ncaf\xe9\n", "not UTF-8"),
    ],
)
def test_files_that_cannot_be_scored_are_refused_with_the_reason(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ScoreFileError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        read_lines(path)


async def test_an_output_of_another_file_is_not_overwritten(
    platform_settings: Settings, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("text\nhello\n")
    second.write_text("text\nbonjour\n")
    out = tmp_path / "out.csv"
    out.write_text(f"text,id\nhello,{read_lines(first)[0][0].id}\n")
    with pytest.raises(ScoreFileError, match="holds results of another file"):
        await score_file(platform_settings, second, out, progress=False)
