"""What the routes depend on, built once per process by the wiring and handed to each route
through FastAPI's dependency injection (`Annotated[Gateway, Depends(gateway)]`)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from services.gateway.alerts import AlertWatcher
from services.gateway.errors import ApiError
from services.gateway.limits import RateLimiter
from services.gateway.replies import ReplyWaiter
from shared.bus import ConnectionState
from shared.consumers import ConsumerWatch
from shared.jetstream import JetStreamPublisher
from shared.keys import KeyRing
from shared.messages import DataSelector, PredictionSnapshot
from shared.scrub import TextPolicy
from shared.settings import Settings
from shared.storage import PredictionRepository

if TYPE_CHECKING:
    from nats.aio.client import Client

RECENT_PREDICTIONS = 10_000


class RecentPredictions:
    """Predictions this gateway served lately, so feedback and idempotent retries need not
    wait for the store."""

    def __init__(self, size: int = RECENT_PREDICTIONS) -> None:
        self.size = size
        self._items: OrderedDict[str, PredictionSnapshot] = OrderedDict()

    def add(self, prediction_id: str, snapshot: PredictionSnapshot) -> None:
        self._items[prediction_id] = snapshot
        self._items.move_to_end(prediction_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, prediction_id: str) -> PredictionSnapshot | None:
        return self._items.get(prediction_id)

    def erase(self, selector: DataSelector) -> int:
        """Forget what an erasure removed from the store (privacy.erased); how many."""
        needle = (selector.text_contains or "").casefold()
        gone = [
            prediction_id
            for prediction_id, snapshot in self._items.items()
            if prediction_id == selector.prediction_id
            or (needle and needle in snapshot.text.casefold())
            or (selector.before is not None and snapshot.scored_at < selector.before)
        ]
        for prediction_id in gone:
            del self._items[prediction_id]
        return len(gone)


@dataclass
class Gateway:
    settings: Settings
    nc: Client
    publisher: JetStreamPublisher
    connection: ConnectionState
    repository: PredictionRepository
    replies: ReplyWaiter
    keys: KeyRing
    limiter: RateLimiter
    alerts: AlertWatcher | None = None
    consumers: ConsumerWatch | None = None
    recent: RecentPredictions = field(default_factory=RecentPredictions)
    text_policy: TextPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.text_policy = TextPolicy.of(self.settings)

    def minimised(self, text: str, field: str, limit: int) -> str:
        """The text as it may go on the bus (shared/scrub.py). A placeholder can be longer than
        what it replaces ("@a" -> "<handle>"): past `limit` characters it is a 422."""
        kept = self.text_policy.ingress(text)
        if len(kept) > limit:
            raise ApiError(
                422,
                "invalid_request",
                f"{field}: {len(kept)} characters once e-mails, phones, URL paths and @handles "
                f"are replaced by placeholders; at most {limit}",
            )
        return kept


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


GatewayDep = Annotated[Gateway, Depends(gateway)]
