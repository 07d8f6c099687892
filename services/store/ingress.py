"""Text as upstream apps wrote it stays on the bus no longer than it takes to process it.

Upstream apps publish tweets (tweets.submitted) and reports (feedback.reported) as written;
the preprocess worker scrubs a tweet, the store and the alerter a report, and nothing past
them carries the raw text. JetStream would still keep the messages themselves for
`stream_max_age_days`. Under text_storage scrubbed or none, the store worker therefore removes,
every `ingress_purge_s`, the ingress messages that every durable consumer reading them has
acknowledged (below the lowest ack floor): unprocessed messages wait for their readers,
processed ones are gone within `ingress_purge_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from shared import subjects

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)
API_TIMEOUT_S = 5.0


async def purge_processed(nc: Client, stream: str, subject: str, durables: tuple[str, ...]) -> int:
    """Remove the messages of `subject` that every durable in `durables` acknowledged; how many
    went. Nothing goes while one of them does not exist yet: its messages wait for it."""
    js = nc.jetstream()
    floors = []
    for durable in durables:
        try:
            info = await js.consumer_info(stream, durable, timeout=API_TIMEOUT_S)
        except NotFoundError:
            return 0
        floors.append(int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0)
    keep_from = min(floors) + 1
    if keep_from <= 1:
        return 0
    # Purge with a filter and a sequence: the messages of `subject` below `keep_from`.
    # nats-py's purge_stream does not return how many; the API's answer says.
    answer = await nc.request(
        f"$JS.API.STREAM.PURGE.{stream}",
        json.dumps({"filter": subject, "seq": keep_from}).encode(),
        timeout=API_TIMEOUT_S,
    )
    reply = json.loads(answer.data)
    if "error" in reply:
        raise RuntimeError(f"JetStream refused to purge {subject}: {reply['error']}")
    return int(reply.get("purged", 0))


async def purge_ingress_forever(nc: Client, every_s: float) -> None:
    """Purge the processed ingress messages every `every_s`, for as long as the worker runs."""
    while True:
        for stream, subject, durables in subjects.INGRESS:
            try:
                purged = await purge_processed(nc, stream, subject, durables)
            except Exception as error:  # the bus is away: try again next round
                log.warning(
                    "could not purge processed ingress messages",
                    extra={"subject": subject, "reason": str(error)[:300]},
                )
                continue
            if purged:
                log.info(
                    "processed ingress messages purged", extra={"subject": subject, "n": purged}
                )
        await asyncio.sleep(every_s)
