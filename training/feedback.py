"""Wrong-prediction reports as training data: the reports that carry a correct label, one per
prediction, in the `target,text` form training reads (training/data.py), and the time-ordered
split that keeps the most recent of them apart as an in-domain holdout.

The text is the one ClickHouse keeps (`feedback.text`: scrubbed by the platform unless
AIRPARADIS_TEXT_STORAGE says otherwise); under `none` it is empty and the report cannot teach a
model anything: it is skipped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shared.storage import Store

logger = logging.getLogger(__name__)

# The name the reports go by as an MLflow dataset (training/experiment.py), beside "sentiment140".
DATASET_NAME = "airline-feedback"
# Sentiment140's targets for the platform's labels.
TARGETS = {"negative": 0, "positive": 4}
EXPORT_COLUMNS = ("target", "text", "reported_at", "model_version", "prediction_id")
REPORT_COLUMNS = ("id", "prediction_id", "correct_label", "text", "reported_at", "model_version")
# Rows per read: a page of tweets of up to 1,000 characters stays under NATS's 1 MB message when
# the store worker answers it (shared/store_reads.py).
PAGE_ROWS = 200
# The most recent share of the reports kept apart to test on, and the fewest tweets such a
# holdout may hold: fewer tell nothing, and the reports are worth more as training data.
DEFAULT_HOLDOUT_SHARE = 0.3
MIN_HOLDOUT_TWEETS = 5

# Keyset pages in (reported_at, id) order: a report stored during the export cannot shift a page.
_LABELLED_REPORTS = """
SELECT id, prediction_id, correct_label, text, reported_at, model_version,
       toUnixTimestamp64Milli(reported_at) AS reported_ms
FROM feedback FINAL
WHERE correct_label IS NOT NULL
  AND (toUnixTimestamp64Milli(reported_at), id) > ({after_ms:Int64}, {after_id:String})
ORDER BY reported_ms, id
LIMIT {page:UInt32}
"""


class FeedbackError(ValueError):
    """The reports cannot be read or used as training data; the message says why."""


def read_labelled_reports(store: Store, page_rows: int = PAGE_ROWS) -> pd.DataFrame:
    """Every stored report that carries a correct label (columns REPORT_COLUMNS), oldest first."""
    rows: list[dict[str, Any]] = []
    after: tuple[int, str] = (-1, "")
    while True:
        page = store.query(
            _LABELLED_REPORTS, {"after_ms": after[0], "after_id": after[1], "page": page_rows}
        )
        rows += page
        if len(page) < page_rows:
            break
        after = (int(page[-1]["reported_ms"]), str(page[-1]["id"]))
    return pd.DataFrame([{column: row[column] for column in REPORT_COLUMNS} for row in rows])


@dataclass(frozen=True)
class FeedbackExport:
    """Reports made training rows: `frame` has EXPORT_COLUMNS, oldest report first."""

    frame: pd.DataFrame
    reports: int  # labelled reports read
    duplicates: int  # earlier reports of a prediction reported again, left out
    without_text: int  # predictions whose text was not kept (text_storage=none), left out

    @property
    def written(self) -> int:
        return len(self.frame)


def training_rows(reports: pd.DataFrame) -> FeedbackExport:
    """One training row per reported prediction: its latest report that carries a correct label
    (target 0 negative, 4 positive), with the text, time and model version of that report.
    Predictions whose stored text is empty are left out; both omissions are counted."""
    if reports.empty:
        return FeedbackExport(pd.DataFrame(columns=list(EXPORT_COLUMNS)), 0, 0, 0)
    labelled = reports[reports["correct_label"].isin(list(TARGETS))]
    ordered = labelled.assign(
        reported_at=pd.to_datetime(labelled["reported_at"], utc=True)
    ).sort_values(["reported_at", "id"], kind="stable")
    latest = ordered.drop_duplicates("prediction_id", keep="last")
    with_text = latest[latest["text"].fillna("").str.strip() != ""]
    frame = pd.DataFrame(
        {
            "target": with_text["correct_label"].map(TARGETS).astype("int64"),
            "text": with_text["text"],
            "reported_at": [_iso(moment) for moment in with_text["reported_at"]],
            "model_version": with_text["model_version"].astype(str),
            "prediction_id": with_text["prediction_id"],
        }
    ).reset_index(drop=True)
    return FeedbackExport(
        frame,
        reports=len(labelled),
        duplicates=len(ordered) - len(latest),
        without_text=len(latest) - len(with_text),
    )


def write_export(export: FeedbackExport, path: Path) -> Path:
    """The rows as a UTF-8 CSV with a header (training/data.py's 2-column form, plus columns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    export.frame.to_csv(path, index=False, encoding="utf-8")
    return path


def _iso(moment: datetime) -> str:
    return pd.Timestamp(moment).isoformat(timespec="milliseconds")


# --- Training on them ------------------------------------------------------------------------


@dataclass(frozen=True)
class InDomainData:
    """Labelled airline tweets to train on beside Sentiment140 (`train`), and the most recent
    ones kept apart to test on (`holdout`, empty when there were too few); columns text, label
    and, for the record, `source_row` (the row in `source`) and `split`."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    source: str
    weight: float = 1.0
    # Training rows left out because a holdout row has the same text (one tweet scored twice).
    same_text_as_holdout: int = 0

    def without_texts(self, texts: set[str]) -> tuple[InDomainData, int]:
        """Itself without the training rows whose text is in texts, and how many there were."""
        kept = self.train[~self.train["text"].isin(texts)]
        return replace(self, train=kept), len(self.train) - len(kept)

    def assignments(self) -> pd.DataFrame:
        """One row per tweet: source_row, split (train or holdout), label."""
        both = pd.concat([self.train.assign(split="train"), self.holdout.assign(split="holdout")])
        return both[["source_row", "split", "label"]].reset_index(drop=True)


def split_in_domain(
    frame: pd.DataFrame,
    *,
    source: str,
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
    weight: float = 1.0,
    min_holdout: int = MIN_HOLDOUT_TWEETS,
) -> InDomainData:
    """Keep the most recent `holdout_share` of frame (by `reported_at`, else by row order, the
    last rows being the latest) apart as the in-domain holdout, never trained on; the rest is to
    train on. A holdout of fewer than `min_holdout` tweets is not made: all rows are to train on.

    frame is training/data.py's (text, label, indexed by source_row); a training row with the
    text of a holdout row is left out, so no tweet is both trained and tested on.
    """
    if not 0 <= holdout_share < 1:
        raise FeedbackError(f"the holdout share must be in [0, 1), got {holdout_share}")
    if not weight > 0:
        raise FeedbackError(f"the weight of the extra data must be positive, got {weight}")
    rows = pd.DataFrame(
        {
            "source_row": frame.index.to_numpy(),
            "text": frame["text"].to_numpy(),
            "label": frame["label"].to_numpy(),
        }
    )
    if "reported_at" in frame.columns:
        moments = pd.to_datetime(frame["reported_at"], utc=True, errors="coerce")
        if moments.isna().any():
            first = frame["reported_at"][moments.isna()].iloc[0]
            raise FeedbackError(f"{source}: reported_at {first!r} is not a date and time")
        order = rows.assign(at=moments.to_numpy()).sort_values(["at", "source_row"]).index
        rows = rows.loc[order]
    size = round(len(rows) * holdout_share)
    if size < min_holdout:
        return InDomainData(rows.reset_index(drop=True), rows.iloc[:0], source, weight)
    train, holdout = rows.iloc[: len(rows) - size], rows.iloc[len(rows) - size :]
    leaking = train["text"].isin(set(holdout["text"]))
    return InDomainData(
        train[~leaking].reset_index(drop=True),
        holdout.reset_index(drop=True),
        source,
        weight,
        same_text_as_holdout=int(leaking.sum()),
    )
