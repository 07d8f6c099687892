"""Reports as training data: one row per prediction (its latest labelled report), the text as
stored, and the time-ordered in-domain holdout that training never sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import load_sentiment140
from training.experiment import Texts, with_extra
from training.feedback import (
    DEFAULT_HOLDOUT_SHARE,
    EXPORT_COLUMNS,
    FeedbackError,
    split_in_domain,
    training_rows,
    write_export,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def report(
    report_id: str,
    prediction_id: str,
    minutes: int,
    correct_label: str | None = "negative",
    text: str = "lost my bag",
    model_version: str = "1",
) -> dict[str, object]:
    """A row as read from the feedback table."""
    return {
        "id": report_id,
        "prediction_id": prediction_id,
        "correct_label": correct_label,
        "text": text,
        "reported_at": T0 + timedelta(minutes=minutes),
        "model_version": model_version,
    }


def test_a_prediction_reported_twice_gives_one_row_with_its_latest_label() -> None:
    reports = pd.DataFrame(
        [
            report("r-2", "p-1", 5, "positive", "great crew"),
            report("r-1", "p-1", 1, "negative", "great crew"),
            report("r-3", "p-2", 3, "negative", "lost my bag"),
        ]
    )

    export = training_rows(reports)

    assert list(export.frame.columns) == list(EXPORT_COLUMNS)
    assert export.frame[["prediction_id", "target", "text"]].to_dict("records") == [
        {"prediction_id": "p-2", "target": 0, "text": "lost my bag"},
        {"prediction_id": "p-1", "target": 4, "text": "great crew"},
    ]
    assert export.frame["reported_at"].tolist() == [
        "2026-03-01T09:03:00.000+00:00",
        "2026-03-01T09:05:00.000+00:00",
    ]
    assert (export.reports, export.duplicates, export.without_text, export.written) == (3, 1, 0, 2)


def test_reports_at_the_same_moment_keep_the_last_by_id() -> None:
    reports = pd.DataFrame(
        [report("r-b", "p-1", 2, "positive"), report("r-a", "p-1", 2, "negative")]
    )

    assert training_rows(reports).frame["target"].tolist() == [4]


def test_a_report_without_a_label_or_without_text_teaches_nothing() -> None:
    reports = pd.DataFrame(
        [
            report("r-1", "p-1", 1, None),
            report("r-2", "p-2", 2, "negative", text=""),
            report("r-3", "p-2", 3, "negative", text=""),
            report("r-4", "p-3", 4, "positive", text="  "),
            report("r-5", "p-4", 5, "positive", text="on time, thanks", model_version="3"),
        ]
    )

    export = training_rows(reports)

    assert export.frame[["prediction_id", "model_version"]].to_dict("records") == [
        {"prediction_id": "p-4", "model_version": "3"}
    ]
    assert (export.reports, export.duplicates, export.without_text) == (4, 1, 2)


def test_no_report_gives_an_empty_export() -> None:
    export = training_rows(pd.DataFrame())
    assert export.written == 0 and list(export.frame.columns) == list(EXPORT_COLUMNS)


def test_the_export_reads_back_as_training_data_with_its_extra_columns(tmp_path: Path) -> None:
    reports = pd.DataFrame(
        [
            report("r-1", "p-1", 1, "negative", 'said "great", two lines:\nlost my bag, NA'),
            report("r-2", "p-2", 2, "positive", "café crew, 10/10 😍"),
        ]
    )
    path = write_export(training_rows(reports), tmp_path / "feedback" / "export.csv")

    frame = load_sentiment140(path)

    assert frame["text"].tolist() == [
        'said "great", two lines:\nlost my bag, NA',
        "café crew, 10/10 😍",
    ]
    assert frame["label"].tolist() == [0, 1]
    assert frame["prediction_id"].tolist() == ["p-1", "p-2"]
    assert pd.to_datetime(frame["reported_at"]).tolist() == [
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    ]


def labelled_reports(n: int) -> pd.DataFrame:
    """n labelled tweets as the loader gives them, in shuffled time order."""
    minutes = [(7 * i) % n for i in range(n)]  # a permutation when n is prime to 7
    frame = pd.DataFrame(
        {
            "text": [f"tweet at minute {m}" for m in minutes],
            "label": [m % 2 for m in minutes],
            "reported_at": [(T0 + timedelta(minutes=m)).isoformat() for m in minutes],
        }
    )
    frame.index.name = "source_row"
    return frame


def test_the_in_domain_holdout_is_the_most_recent_share_and_never_trained_on() -> None:
    frame = labelled_reports(20)

    data = split_in_domain(frame, source="reports.csv", holdout_share=0.3)

    assert len(data.holdout) == 6 and len(data.train) == 14
    holdout_minutes = sorted(int(t.rsplit(" ", 1)[1]) for t in data.holdout["text"])
    assert holdout_minutes == list(range(14, 20))
    assert set(data.train["source_row"]).isdisjoint(data.holdout["source_row"])
    assert set(data.train["text"]).isdisjoint(data.holdout["text"])
    assigned = data.assignments()
    assert sorted(assigned["source_row"]) == list(range(20))
    assert assigned.groupby("split").size().to_dict() == {"holdout": 6, "train": 14}


def test_without_reported_at_the_last_rows_are_the_most_recent() -> None:
    frame = labelled_reports(10).drop(columns="reported_at")

    data = split_in_domain(frame, source="mine.csv", holdout_share=0.5)

    assert data.holdout["source_row"].tolist() == [5, 6, 7, 8, 9]


def test_a_training_row_with_a_holdout_text_is_left_out() -> None:
    frame = labelled_reports(20)
    latest = frame.index[frame["reported_at"] == frame["reported_at"].max()][0]
    frame.loc[frame.index[0], "text"] = frame.loc[latest, "text"]  # one tweet scored twice

    data = split_in_domain(frame, source="reports.csv", holdout_share=0.3)

    assert data.same_text_as_holdout == 1
    assert len(data.train) == 13
    assert set(data.train["text"]).isdisjoint(data.holdout["text"])


@pytest.mark.parametrize(("rows", "share"), [(13, 0.3), (40, 0.0)])
def test_too_few_reports_for_a_holdout_are_all_trained_on(rows: int, share: float) -> None:
    data = split_in_domain(labelled_reports(rows), source="reports.csv", holdout_share=share)

    assert data.holdout.empty and len(data.train) == rows


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"holdout_share": 1.0}, "holdout share"),
        ({"holdout_share": -0.1}, "holdout share"),
        ({"weight": 0.0}, "weight"),
    ],
)
def test_a_share_or_weight_out_of_range_is_refused(options: dict[str, float], reason: str) -> None:
    with pytest.raises(FeedbackError, match=reason):
        split_in_domain(labelled_reports(10), source="reports.csv", **options)  # type: ignore[arg-type]


def test_a_reported_at_that_is_no_date_is_refused() -> None:
    frame = labelled_reports(10)
    frame.loc[frame.index[3], "reported_at"] = "yesterday"

    with pytest.raises(FeedbackError, match="'yesterday' is not a date"):
        split_in_domain(frame, source="reports.csv")


def test_extra_tweets_weigh_in_a_weighted_fit_and_are_repeated_otherwise() -> None:
    train = Texts(["a", "b"], np.array([0, 1]))
    extra = Texts(["x"], np.array([1]))

    weighted = with_extra(train, extra, 2.5, weighted=True)
    repeated = with_extra(train, extra, 2.5, weighted=False)
    once = with_extra(train, extra, 0.3, weighted=False)

    assert weighted.texts == ["a", "b", "x"] and weighted.labels.tolist() == [0, 1, 1]
    assert weighted.weights is not None and weighted.weights.tolist() == [1.0, 1.0, 2.5]
    assert repeated.texts == ["a", "b", "x", "x"] and repeated.weights is None
    assert repeated.labels.tolist() == [0, 1, 1, 1]
    assert once.texts == ["a", "b", "x"]


def test_the_command_line_default_share_is_the_training_one() -> None:
    from airparadis.cli import DEFAULT_EXTRA_HOLDOUT_SHARE

    assert DEFAULT_EXTRA_HOLDOUT_SHARE == DEFAULT_HOLDOUT_SHARE
