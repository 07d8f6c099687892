"""models.promoted -> drift_reference and operating_curve: what the serving model's drift and
live precision are measured against, in ClickHouse.

Training logs each version's reference in its MLflow run (shared/drift.py); the store worker,
the one writer of ClickHouse, copies it when the version becomes the champion, and at start for
the champion of the moment (a first-start training, a promotion made while it was down). Drift is
then computed in SQL against the version that scored each tweet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.bus import InvalidMessage, RetryLater
from shared.drift import DriftReferenceError, save_reference
from shared.estimators.base import ModelNotFoundError
from shared.jetstream import Outcome, decode_batch
from shared.messages import ModelPromoted
from shared.registry import CHALLENGER, CHAMPION, Registry
from shared.settings import Settings
from shared.shift import OperatingCurveError, save_curve
from shared.storage import Store

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log = logging.getLogger(__name__)


class ReferenceCopier:
    """models.promoted -> the new champion's drift reference in ClickHouse."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        events, rejected = decode_batch(batch, ModelPromoted, 64 * 1024)
        outcome = Outcome(rejected=rejected)
        for index, event in events:
            # The champion's reference for drift, the challenger's curve for its live precision.
            wanted = event.alias in (CHAMPION, CHALLENGER) and not event.removed
            if event.model_name != self.settings.model_name or not wanted:
                continue
            try:
                await copy_reference(self.store, self.settings, event.version)
            except InvalidMessage as error:
                outcome.rejected[index] = str(error)
        return outcome


async def copy_reference(store: Store, settings: Settings, model_version: str) -> bool:
    """Copy a version's drift reference and operating curve from MLflow into ClickHouse; False
    when it has no reference.

    InvalidMessage when the version does not exist or what it logged is unreadable (nothing a
    retry mends); RetryLater when MLflow or ClickHouse fail.
    """
    registry = Registry.of(settings)
    try:
        rows = await asyncio.to_thread(registry.reference, model_version)
        curve = await asyncio.to_thread(registry.operating_curve, model_version)
    except (ModelNotFoundError, DriftReferenceError, OperatingCurveError) as error:
        raise InvalidMessage(str(error)) from error
    except Exception as error:  # the registry is down or unreachable: try again later
        raise RetryLater(
            f"cannot read the reference of version {model_version}: {error}"
        ) from error
    where = {"model_name": settings.model_name, "model_version": model_version}
    for name, logged in (("drift reference", rows), ("operating curve", curve)):
        if logged is None:
            log.warning(
                "not logged with this version: none in ClickHouse until "
                "`airparadis models reference` builds it",
                extra=where | {"missing": name},
            )
    try:
        if rows is not None:
            await asyncio.to_thread(save_reference, store, rows)
        if curve is not None:
            await asyncio.to_thread(save_curve, store, settings.model_name, model_version, curve)
    except Exception as error:
        raise RetryLater(f"ClickHouse refused the reference: {error}") from error
    log.info("drift reference and operating curve stored", extra=where)
    return rows is not None


async def copy_champion_reference(store: Store, settings: Settings) -> None:
    """At start: copy the champion's reference (again: a reference rebuilt while the store was
    down replaces the stored one, and a copy is a few dozen rows). Never fatal: the platform
    serves without drift figures rather than not at all."""
    try:
        champion = await asyncio.to_thread(Registry.of(settings).champion)
        if champion is not None:
            await copy_reference(store, settings, champion.version)
    except Exception:
        log.warning("could not store the champion's drift reference", exc_info=True)
