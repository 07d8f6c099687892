"""Where the alerter keeps its window, the ids of alerts already emailed and when it last raised
each kind of scheduled alert (drift, error rate).

In JetStream KV, with compare-and-set on the revision, so a restart forgets nothing and two
replicas never both count a report or both send an email. (tests/fakes.py has an in-memory
one with the same contract, for tests on the in-memory broker, which has no KV.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.alerter.window import WrongPredictionWindow

WINDOW_KEY = "wrong_predictions.window"
COOLDOWN_PREFIX = "cooldown."


class WindowConflict(RuntimeError):
    """Another replica changed the window first; load it again and retry."""


class AlerterState(Protocol):
    async def load_window(self) -> tuple[WrongPredictionWindow, int | None]: ...
    async def save_window(self, window: WrongPredictionWindow, revision: int | None) -> None: ...
    async def was_sent(self, alert_id: str) -> bool: ...
    async def mark_sent(self, alert_id: str) -> None: ...
    async def claim_cooldown(self, kind: str, now: datetime, cooldown_s: float) -> bool: ...
    async def release_cooldown(self, kind: str, claimed_at: datetime) -> None: ...


def _cooling(last: bytes | None, now: datetime, cooldown_s: float) -> bool:
    """Whether an alert raised at `last` (ISO time) still silences one at `now`."""
    if not last:
        return False
    try:
        raised = datetime.fromisoformat(last.decode())
    except ValueError:
        return False  # an unreadable mark silences nothing
    return now - raised < timedelta(seconds=cooldown_s)


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

    async def claim_cooldown(self, kind: str, now: datetime, cooldown_s: float) -> bool:
        """Take the right to raise a `kind` alert now: False while the last one of that kind
        is younger than cooldown_s, or when another replica claimed it first."""
        kv = await self.bucket()
        key = f"{COOLDOWN_PREFIX}{kind}"
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            entry = None
        if entry is not None and _cooling(entry.value, now, cooldown_s):
            return False
        data = now.isoformat().encode()
        try:
            if entry is None:
                await kv.create(key, data)
            else:
                await kv.update(key, data, last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:  # create() on a key another replica just created
            if "wrong last sequence" in str(exc).lower():
                return False
            raise
        return True

    async def release_cooldown(self, kind: str, claimed_at: datetime) -> None:
        """Undo a claim made at claimed_at whose alert could not be published (unless another
        claim replaced it since)."""
        kv = await self.bucket()
        key = f"{COOLDOWN_PREFIX}{kind}"
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return
        if entry.value == claimed_at.isoformat().encode():
            # Claimed again meanwhile (a wrong last sequence): that claim stands.
            with contextlib.suppress(KeyWrongLastSequenceError):
                await kv.delete(key, last=entry.revision)
