"""Sentiment140 from disk to labelled frames: read both CSV forms, download, sample, split.

Every frame has the columns `text` (str) and `label` (0 negative, 1 positive) and is indexed by
`source_row`, the row's position among the data rows of the file it came from, so that a split can
be written down and rebuilt from the same file. The 2-column form may carry more columns after
`target,text` (a feedback export's reported_at, model_version, prediction_id: training/feedback.py);
they are kept, as text.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

OFFICIAL_URL = "https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"
OFFICIAL_MD5 = "1647eb110dd2492512e27b9a70d5d1bc"
ARCHIVE_NAME = "trainingandtestdata.zip"
TRAINING_MEMBER = "training.1600000.processed.noemoticon.csv"
ORIGINAL_COLUMNS = ("target", "id", "date", "query", "user", "text")

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_UTF8_BOM = b"\xef\xbb\xbf"
_TARGETS = {"0": 0, "2": None, "4": 1}
_CHUNK_BYTES = 1 << 20


class DatasetError(Exception):
    """The data cannot be read, downloaded, sampled or split; the message says why."""


class CsvForm(Enum):
    ORIGINAL = "original"  # latin-1, no header: target,id,date,query,user,text
    TWO_COLUMN = "two-column"  # UTF-8, header: target,text (then any other columns)


@dataclass(frozen=True)
class Split:
    """Train, validation and test frames, stratified by label."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def assignments(self) -> pd.DataFrame:
        """One row per tweet: source_row, split, label; enough to rebuild the split."""
        parts = [
            pd.DataFrame(
                {"source_row": frame.index, "split": name, "label": frame["label"].to_numpy()}
            )
            for name, frame in (("train", self.train), ("val", self.val), ("test", self.test))
        ]
        return pd.concat(parts, ignore_index=True)


def load_sentiment140(path: Path) -> pd.DataFrame:
    """Read Sentiment140 in its original or 2-column form, plain, gzipped or in the official zip.

    Neutral tweets (label 2, only in the official test file) are dropped, as are empty tweets;
    both counts are logged. Any label other than 0, 2 or 4 is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with _open_csv(path) as stream:
        form = _detect_form(path, stream.readline())
        stream.seek(0)
        raw = _read_csv(path, stream, form)
    frame = _labelled(path, raw)
    logger.info("loaded %d tweets from %s (%s form)", len(frame), path, form.value)
    return frame


def download_sentiment140(
    dest_dir: Path,
    *,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
    timeout_s: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the official archive into dest_dir, check its md5 and return its path.

    A file already there with the right checksum is not downloaded again.
    """
    name = Path(urlparse(url).path).name or ARCHIVE_NAME
    target = Path(dest_dir) / name
    if target.is_file() and _md5(target) == md5:
        logger.info("%s already downloaded, checksum ok", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        digest = _fetch(url, partial, timeout_s=timeout_s, progress=progress)
    except OSError as error:  # urllib's URLError and socket timeouts are OSErrors
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise DatasetError(
            f"cannot download Sentiment140 from {url}: {reason}. Check the network, or fetch "
            f"{ARCHIVE_NAME} by hand and pass its path to load_sentiment140."
        ) from error
    if digest != md5:
        partial.unlink(missing_ok=True)
        raise DatasetError(
            f"checksum mismatch for {url}: md5 {digest}, expected {md5}; the download was deleted"
        )
    partial.replace(target)
    logger.info("downloaded %s, checksum ok", target)
    return target


def balanced_sample(df: pd.DataFrame, n: int, seed: int = 42) -> pd.DataFrame:
    """n rows, n/2 of each label, drawn and shuffled with a fixed seed."""
    if n < 2 or n % 2:
        raise DatasetError(f"sample size must be an even number of at least 2, got {n}")
    per_class = n // 2
    counts = df["label"].value_counts()
    for label in (0, 1):
        available = int(counts.get(label, 0))
        if available < per_class:
            raise DatasetError(
                f"cannot draw {n} balanced tweets: {available} have label {label}, "
                f"{per_class} are needed"
            )
    parts = [df[df["label"] == label].sample(n=per_class, random_state=seed) for label in (0, 1)]
    return pd.concat(parts).sample(frac=1.0, random_state=seed)


def split(df: pd.DataFrame, val: float = 0.1, test: float = 0.1, seed: int = 42) -> Split:
    """Stratified train/validation/test split with a fixed seed; val and test are fractions."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise DatasetError(f"val and test must be fractions with val + test < 1, got {val}, {test}")
    try:
        rest, test_frame = train_test_split(
            df, test_size=test, stratify=df["label"], random_state=seed
        )
        train_frame, val_frame = train_test_split(
            rest, test_size=val / (1 - test), stratify=rest["label"], random_state=seed
        )
    except ValueError as error:
        raise DatasetError(
            f"cannot split {len(df)} tweets into train/val/test stratified by label: {error}"
        ) from error
    return Split(train=train_frame, val=val_frame, test=test_frame)


@contextmanager
def _open_csv(path: Path) -> Iterator[IO[bytes]]:
    """The CSV bytes of a plain, gzipped or zipped file, chosen by magic number, not by name."""
    with path.open("rb") as probe:
        magic = probe.read(4)
    with ExitStack() as stack:
        try:
            if magic.startswith(_GZIP_MAGIC):
                stream: IO[bytes] = stack.enter_context(gzip.open(path, "rb"))  # type: ignore[arg-type]
            elif magic.startswith(_ZIP_MAGIC):
                archive = stack.enter_context(zipfile.ZipFile(path))
                stream = stack.enter_context(archive.open(_csv_member(path, archive)))
            else:
                stream = stack.enter_context(path.open("rb"))
        except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as error:
            raise DatasetError(f"{path}: damaged archive: {error}") from error
        yield stream


def _csv_member(path: Path, archive: zipfile.ZipFile) -> str:
    names = archive.namelist()
    if TRAINING_MEMBER in names:
        return TRAINING_MEMBER
    csvs = [name for name in names if name.lower().endswith(".csv")]
    if len(csvs) == 1:
        return csvs[0]
    raise DatasetError(
        f"{path}: expected {TRAINING_MEMBER} or a single CSV in the archive, found {names}"
    )


def _detect_form(path: Path, first_line: bytes) -> CsvForm:
    line = first_line.removeprefix(_UTF8_BOM).decode("latin-1").strip()
    fields = next(csv.reader([line]), [])
    if [field.strip().lower() for field in fields[:2]] == ["target", "text"]:
        return CsvForm.TWO_COLUMN
    if len(fields) == len(ORIGINAL_COLUMNS) and fields[0].strip() in _TARGETS:
        return CsvForm.ORIGINAL
    raise DatasetError(
        f"{path}: unknown format, first line {line[:80]!r}; expected a header starting with "
        "'target,text' or the original 6 columns target,id,date,query,user,text without a header"
    )


def _read_csv(path: Path, stream: IO[bytes], form: CsvForm) -> pd.DataFrame:
    # keep_default_na=False: a tweet that says "NA" or "null" is text, not a missing value.
    options: dict[str, object] = {"dtype": str, "keep_default_na": False}
    if form is CsvForm.ORIGINAL:
        options |= {
            "header": None,
            "names": list(ORIGINAL_COLUMNS),
            "usecols": ["target", "text"],
            "encoding": "latin-1",
        }
    else:
        options |= {"encoding": "utf-8-sig"}
    try:
        raw = pd.read_csv(stream, **options)
        return raw.rename(columns={name: name.strip().lower() for name in raw.columns[:2]})
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: the 2-column form must be UTF-8: {error}") from error
    except (pd.errors.ParserError, ValueError) as error:
        raise DatasetError(f"{path}: cannot parse as {form.value} CSV: {error}") from error


def _labelled(path: Path, raw: pd.DataFrame) -> pd.DataFrame:
    targets = raw["target"].str.strip()
    unknown = ~targets.isin(list(_TARGETS))
    if unknown.any():
        first = targets[unknown].iloc[0]
        raise DatasetError(
            f"{path}: {int(unknown.sum())} rows have a label other than 0, 2 or 4 "
            f"(first: {first!r} in data row {targets[unknown].index[0]})"
        )
    neutral = targets == "2"
    if neutral.any():
        logger.info("dropped %d neutral tweets (label 2) from %s", int(neutral.sum()), path)
    empty = raw["text"].str.strip() == ""
    if (empty & ~neutral).any():
        logger.info("dropped %d empty tweets from %s", int((empty & ~neutral).sum()), path)
    keep = ~neutral & ~empty
    frame = pd.DataFrame(
        {"text": raw.loc[keep, "text"], "label": (targets[keep] == "4").astype("int64")}
    )
    for extra in raw.columns.drop(["target", "text"]):
        frame[extra] = raw.loc[keep, extra]
    frame.index.name = "source_row"
    return frame


def _fetch(url: str, dest: Path, *, timeout_s: float, progress: bool) -> str:
    """Stream url into dest with a progress bar; return the md5 of what was written."""
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=timeout_s) as response, dest.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=dest.stem,
            disable=None if progress else True,
        ) as bar:
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
