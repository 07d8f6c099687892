"""Fakes with the contracts of the real thing, for tests on the in-memory broker."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.messages import AlertRaised, FeedbackReported, PredictionSnapshot, TweetScored
from shared.models import LoadedModel

POSITIVE_WORDS = ("love", "great", "thanks", "amazing", "good")


def keyword_model(version: str = "1", threshold: float = 0.5) -> LoadedModel:
    """A deterministic model: a tweet with a positive word is positive."""

    def predict_proba(texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [0.9 if any(w in t.lower() for w in POSITIVE_WORDS) else 0.1 for t in texts]
        )

    return LoadedModel(
        name="airparadis-sentiment",
        version=version,
        threshold=threshold,
        predict_proba=predict_proba,
    )


class MemoryRepository:
    """PredictionRepository's contract over dicts (dedup by id, like ReplacingMergeTree)."""

    def __init__(self) -> None:
        self.predictions: dict[str, TweetScored] = {}
        self.feedback: dict[str, FeedbackReported] = {}
        self.alerts: dict[str, AlertRaised] = {}
        self.fail_next: int = 0

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("ClickHouse is down (simulated)")

    async def save_predictions(self, rows: list[TweetScored]) -> None:
        self._maybe_fail()
        self.predictions.update({r.id: r for r in rows})

    async def save_feedback(self, rows: list[FeedbackReported]) -> None:
        self._maybe_fail()
        self.feedback.update({r.id: r for r in rows})

    async def save_alerts(self, rows: list[AlertRaised]) -> None:
        self._maybe_fail()
        self.alerts.update({r.id: r for r in rows})

    async def get_prediction(self, prediction_id: str) -> PredictionSnapshot | None:
        scored = self.predictions.get(prediction_id)
        return PredictionSnapshot.of(scored) if scored else None

    async def ping(self) -> bool:
        return True
