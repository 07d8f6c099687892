"""Fakes with the contracts of the real thing, for tests on the in-memory broker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from services.alerter.state import WindowConflict, _cooling
from services.alerter.window import WrongPredictionWindow
from shared.explain import Explanation, occlusion
from shared.models import LoadedModel, Scores

POSITIVE_WORDS = ("love", "great", "thanks", "amazing", "good")


class KeywordModel:
    """A deterministic ServingModel: a tweet with a positive word is positive."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [0.9 if any(w in t.lower() for w in POSITIVE_WORDS) else 0.1 for t in texts]
        )

    def score(self, texts: Sequence[str]) -> Scores:
        return Scores(self.predict_proba(texts), None)

    def explain(self, text: str, budget_s: float) -> Explanation:
        return occlusion(text, self.predict_proba, budget_s)


def keyword_model(version: str = "1", threshold: float = 0.5) -> LoadedModel:
    """KeywordModel as a loaded version of the platform's model."""
    return LoadedModel("airparadis-sentiment", version, KeywordModel(threshold))


class MemoryAlerterState:
    def __init__(self) -> None:
        self.window = WrongPredictionWindow()
        self.revision: int | None = None
        self.sent: set[str] = set()
        self.last_raised: dict[str, datetime] = {}

    async def load_window(self) -> tuple[WrongPredictionWindow, int | None]:
        return self.window, self.revision

    async def save_window(self, window: WrongPredictionWindow, revision: int | None) -> None:
        if revision != self.revision:
            raise WindowConflict(f"expected revision {self.revision}, got {revision}")
        self.window = window
        self.revision = (self.revision or 0) + 1

    async def was_sent(self, alert_id: str) -> bool:
        return alert_id in self.sent

    async def mark_sent(self, alert_id: str) -> None:
        self.sent.add(alert_id)

    async def claim_cooldown(self, kind: str, now: datetime, cooldown_s: float) -> bool:
        last = self.last_raised.get(kind)
        if last is not None and _cooling(last.isoformat().encode(), now, cooldown_s):
            return False
        self.last_raised[kind] = now
        return True

    async def release_cooldown(self, kind: str, claimed_at: datetime) -> None:
        if self.last_raised.get(kind) == claimed_at:
            del self.last_raised[kind]
