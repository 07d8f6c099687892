"""The loader on the team's real Sentiment140 files (skipped without AIRPARADIS_DATA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data import balanced_sample, load_sentiment140

pytestmark = [pytest.mark.integration, pytest.mark.data]


@pytest.fixture
def original_head(sentiment140_sample: Path) -> Path:
    """The first rows of the original file, which the team keeps beside the sample."""
    path = sentiment140_sample.parent / "original-format-head.csv"
    if not path.exists():
        pytest.skip(f"{path} does not exist")
    return path


def test_the_original_head_reads_as_2000_negative_tweets(original_head: Path) -> None:
    frame = load_sentiment140(original_head)

    assert len(frame) == 2000
    assert set(frame["label"]) == {0}
    assert frame.index[0] == 0
    assert frame["text"].iloc[0].startswith("@switchfoot http://twitpic.com/2y1zl - Awww")


def test_the_sample_holds_100k_balanced_tweets(sentiment140_sample: Path) -> None:
    frame = load_sentiment140(sentiment140_sample)

    assert len(frame) == 100_000
    assert frame["label"].value_counts().to_dict() == {0: 50_000, 1: 50_000}
    assert frame["text"].map(lambda text: isinstance(text, str) and text.strip() != "").all()
    assert balanced_sample(frame, 1000)["label"].value_counts().to_dict() == {0: 500, 1: 500}
