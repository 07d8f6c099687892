"""Where the alerter keeps its window and the ids of alerts already emailed.

In JetStream KV, with compare-and-set on the revision, so a restart forgets nothing and two
replicas never both count a report or both send an email. The in-memory store has the same
contract for tests on the in-memory broker, which has no KV.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.alerter.window import WrongPredictionWindow

WINDOW_KEY = "wrong_predictions.window"


class WindowConflict(RuntimeError):
    """Another replica changed the window first; load it again and retry."""


class AlerterState(Protocol):
    async def load_window(self) -> tuple[WrongPredictionWindow, int | None]: ...
    async def save_window(self, window: WrongPredictionWindow, revision: int | None) -> None: ...
    async def was_sent(self, alert_id: str) -> bool: ...
    async def mark_sent(self, alert_id: str) -> None: ...


class KvAlerterState:
    """State in a KV bucket, opened on first use (the bucket needs a connected broker)."""

    def __init__(self, open_bucket: Callable[[], Awaitable[KeyValue]]) -> None:
        self._open_bucket = open_bucket
        self._kv: KeyValue | None = None

    async def bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._open_bucket()
        return self._kv

    async def load_window(self) -> tuple[WrongPredictionWindow, int | None]:
        kv = await self.bucket()
        try:
            entry = await kv.get(WINDOW_KEY)
        except KeyNotFoundError:
            return WrongPredictionWindow(), None
        return WrongPredictionWindow.model_validate_json(entry.value or b"{}"), entry.revision

    async def save_window(self, window: WrongPredictionWindow, revision: int | None) -> None:
        kv = await self.bucket()
        data = window.model_dump_json().encode()
        try:
            if revision is None:
                await kv.create(WINDOW_KEY, data)
            else:
                await kv.update(WINDOW_KEY, data, last=revision)
        except KeyWrongLastSequenceError as exc:
            raise WindowConflict(str(exc)) from exc
        except Exception as exc:  # create() on a key another replica just created
            if "wrong last sequence" in str(exc).lower():
                raise WindowConflict(str(exc)) from exc
            raise

    async def was_sent(self, alert_id: str) -> bool:
        kv = await self.bucket()
        try:
            await kv.get(f"sent.{alert_id}")
        except KeyNotFoundError:
            return False
        return True

    async def mark_sent(self, alert_id: str) -> None:
        await (await self.bucket()).put(f"sent.{alert_id}", b"1")


class MemoryAlerterState:
    def __init__(self) -> None:
        self.window = WrongPredictionWindow()
        self.revision: int | None = None
        self.sent: set[str] = set()

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
