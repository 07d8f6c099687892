"""Reading Sentiment140 in every form it comes in, downloading it, sampling and splitting."""

from __future__ import annotations

import csv
import gzip
import hashlib
import http.server
import io
import logging
import socket
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from training.data import (
    TRAINING_MEMBER,
    DatasetError,
    balanced_sample,
    download_sentiment140,
    load_sentiment140,
    split,
)

DATE = "Mon Apr 06 22:19:45 PDT 2009"
ORIGINAL_ROWS = [
    ("0", "1467810369", DATE, "NO_QUERY", "anna", "my flight is late again"),
    ("4", "1467810672", DATE, "NO_QUERY", "bob", "café au lait on board, lovely"),
    ("4", "1467810917", DATE, "NO_QUERY", "carl", 'she said "wow", great crew'),
]


def original_csv(rows: list[tuple[str, ...]]) -> bytes:
    """Rows in the original form: every field quoted, no header, latin-1."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("latin-1")


def two_column_csv(rows: list[tuple[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["target", "text"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def labelled(n_per_class: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"tweet {i}" for i in range(2 * n_per_class)],
            "label": [0, 1] * n_per_class,
        }
    )


def test_reads_the_two_column_form_gzipped(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv.gz"
    rows = [("0", "lost my bag 😡"), ("4", "great crew, thanks"), ("4", "NA")]
    path.write_bytes(gzip.compress(two_column_csv(rows)))

    frame = load_sentiment140(path)

    assert frame["text"].tolist() == ["lost my bag 😡", "great crew, thanks", "NA"]
    assert frame["label"].tolist() == [0, 1, 1]


def test_reads_the_original_latin1_form(tmp_path: Path) -> None:
    path = tmp_path / "original.csv"
    path.write_bytes(original_csv(ORIGINAL_ROWS))

    frame = load_sentiment140(path)

    assert list(frame.columns) == ["text", "label"]
    assert frame["label"].tolist() == [0, 1, 1]
    assert frame["text"].tolist() == [
        "my flight is late again",
        "café au lait on board, lovely",
        'she said "wow", great crew',
    ]
    assert frame.index.tolist() == [0, 1, 2]


def test_reads_the_training_csv_inside_the_official_zip(tmp_path: Path) -> None:
    path = tmp_path / "trainingandtestdata.zip"
    neutral = ("2", "1", "Mon May 11 03:17:40 UTC 2009", "kindle2", "dan", "a kindle")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("testdata.manual.2009.06.14.csv", original_csv([neutral]))
        archive.writestr(TRAINING_MEMBER, original_csv(ORIGINAL_ROWS))

    frame = load_sentiment140(path)

    assert frame["label"].tolist() == [0, 1, 1]


def test_neutral_tweets_are_dropped_with_a_logged_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "test.csv"
    neutral = ("2", "9", "Mon May 11 03:17:40 UTC 2009", "kindle2", "dan", "a kindle")
    path.write_bytes(original_csv([*ORIGINAL_ROWS, neutral, neutral]))

    with caplog.at_level(logging.INFO, logger="training.data"):
        frame = load_sentiment140(path)

    assert len(frame) == 3
    assert "dropped 2 neutral tweets" in caplog.text


def test_a_label_other_than_0_2_4_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(two_column_csv([("0", "fine"), ("1", "one is not a Sentiment140 label")]))

    with pytest.raises(DatasetError, match="other than 0, 2 or 4"):
        load_sentiment140(path)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_sentiment140(tmp_path / "absent.csv")


def test_an_unknown_format_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("sentiment,tweet\npositive,hello\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="unknown format"):
        load_sentiment140(path)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_download_failure_says_the_network_is_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/trainingandtestdata.zip"

    with pytest.raises(DatasetError, match="cannot download Sentiment140") as error:
        download_sentiment140(tmp_path, url=url, timeout_s=2, progress=False)

    assert url in str(error.value)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def archive_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A local HTTP server offering a small archive: (url, its md5)."""
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "trainingandtestdata.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(TRAINING_MEMBER, original_csv(ORIGINAL_ROWS))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{archive.name}"
        yield url, hashlib.md5(archive.read_bytes()).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_checks_the_checksum_and_gives_a_loadable_archive(
    tmp_path: Path, archive_server: tuple[str, str]
) -> None:
    url, md5 = archive_server

    path = download_sentiment140(tmp_path / "data", url=url, md5=md5, progress=False)

    assert path.name == "trainingandtestdata.zip"
    assert load_sentiment140(path)["label"].tolist() == [0, 1, 1]


def test_download_with_a_wrong_checksum_is_deleted(
    tmp_path: Path, archive_server: tuple[str, str]
) -> None:
    url, _ = archive_server

    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_sentiment140(tmp_path / "data", url=url, md5="0" * 32, progress=False)

    assert list((tmp_path / "data").iterdir()) == []


def test_balanced_sample_takes_half_of_each_label_reproducibly() -> None:
    frame = labelled(50)

    first = balanced_sample(frame, 40, seed=7)
    second = balanced_sample(frame, 40, seed=7)

    assert first["label"].value_counts().to_dict() == {0: 20, 1: 20}
    assert first.index.tolist() == second.index.tolist()


def test_balanced_sample_refuses_more_than_a_class_holds() -> None:
    with pytest.raises(DatasetError, match="51 are needed"):
        balanced_sample(labelled(50), 102)


def test_split_is_stratified_disjoint_and_complete() -> None:
    frame = labelled(50)

    parts = split(frame, val=0.1, test=0.2, seed=3)

    assert parts.sizes() == {"train": 70, "val": 10, "test": 20}
    for part in (parts.train, parts.val, parts.test):
        assert part["label"].mean() == 0.5
    assignments = parts.assignments()
    assert sorted(assignments["source_row"]) == frame.index.tolist()


def test_split_of_too_few_tweets_says_why() -> None:
    with pytest.raises(DatasetError, match="cannot split 4 tweets"):
        split(labelled(2))
