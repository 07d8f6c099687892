"""The bus's published contract: every subject of shared/subjects.py with the schema of what
travels on it, as an AsyncAPI 3.0 document that FastStream generates from the pydantic messages
of shared/messages.py.

The gateway serves it at /asyncapi; `airparadis asyncapi` writes it to docs/asyncapi.json (and
`--check` fails when that file is out of date). The workers' hot path is plain nats-py, so the
document is built from this table, not from their handlers: a subject added to subjects.py and
not here fails tests/unit/test_contract.py.

In the document, an operation `receive` is the platform receiving (an app publishes there), and
`send` the platform sending (an app subscribes there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from shared import subjects
from shared.messages import (
    AlertRaised,
    DataErased,
    DeadLetter,
    ExplainRequested,
    ExportRequested,
    FeedbackReported,
    ForgetRequested,
    ModelPromoted,
    RequestsRefused,
    ShadowScored,
    StoreInsertRequested,
    StoreQueryRequested,
    ThresholdSet,
    TweetPreprocessed,
    TweetScored,
    TweetSubmitted,
)

TITLE = "Air Paradis sentiment bus"
VERSION = "1"


class StatusAsked(BaseModel):
    """An empty request: rpc.infer.status takes no body."""


@dataclass(frozen=True)
class Channel:
    subject: str
    message: type[BaseModel]
    direction: Literal["receive", "send"]
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel(
        subjects.TWEETS_SUBMITTED,
        TweetSubmitted,
        "receive",
        "Tweets to score. Upstream apps (NATS user `upstream`) and the gateway publish here, on "
        "JetStream (stream TWEETS) with a Nats-Msg-Id header so a re-publish is dropped. With "
        "`reply_to` below _INBOX.airparadis. the answer comes there too.",
    ),
    Channel(
        subjects.TWEETS_PREPROCESSED,
        TweetPreprocessed,
        "receive",
        "Internal: preprocess to infer (validated tweets with their text features).",
    ),
    Channel(
        subjects.TWEETS_SCORED,
        TweetScored,
        "send",
        "Every scored tweet, with its label, probability, threshold and model version. Apps "
        "subscribe here to read scores; the store keeps each in ClickHouse.",
    ),
    Channel(
        subjects.TWEETS_SHADOW_SCORED,
        ShadowScored,
        "send",
        "Internal: the challenger's score of each tweet the champion scored (shadow scoring), "
        "stored beside the champion's prediction; never an answer to a caller.",
    ),
    Channel(
        f"{subjects.REPLY_PREFIX}.>",
        TweetScored,
        "send",
        "Answers to a tweet published with `reply_to`: its TweetScored, or a ScoringFailed "
        "({id, reason}) when it cannot be scored.",
    ),
    Channel(
        subjects.FEEDBACK_REPORTED,
        FeedbackReported,
        "receive",
        "Wrong-prediction reports (the gateway and apps publish them); three in five minutes "
        "email the team.",
    ),
    Channel(
        subjects.ALERTS_RAISED,
        AlertRaised,
        "send",
        "Alerts (wrong predictions, drift, error rate, precision risk), emailed and stored.",
    ),
    Channel(
        subjects.MODELS_PROMOTED,
        ModelPromoted,
        "receive",
        "A version took an alias (`airparadis models promote`, `airparadis retrain` for the "
        "challenger), or lost it (`removed`: `airparadis models unset-alias`): infer swaps to "
        "a new champion, the store copies its drift reference and operating curve.",
    ),
    Channel(
        subjects.MODELS_THRESHOLD,
        ThresholdSet,
        "send",
        "The live precision estimate of the serving version every check round, and the "
        "threshold infer applies from then on.",
    ),
    Channel(
        subjects.GATEWAY_REFUSED,
        RequestsRefused,
        "send",
        "Internal: the requests a gateway refused for their rate (429), summed per limit, kind "
        "of bucket and key name over a window, one message every refusals_flush_s while there "
        "are any; the store keeps them in the refusals table (Grafana). No client address.",
    ),
    Channel(
        f"{subjects.DLQ_PREFIX}>",
        DeadLetter,
        "send",
        "dlq.<subject>: what no worker could process, with the reason and the original payload.",
    ),
    Channel(
        subjects.INFER_STATUS,
        StatusAsked,
        "receive",
        "Core request: which model serves. Answered with an InferStatus.",
    ),
    Channel(
        subjects.EXPLAIN_REQUESTED,
        ExplainRequested,
        "receive",
        "Core request: which words push a tweet toward positive or negative. Answered with an "
        "ExplanationReady, or a RequestFailed.",
    ),
    Channel(
        subjects.STORE_QUERY,
        StoreQueryRequested,
        "receive",
        "Internal core request (embedded mode): a read-only query the store worker runs on chDB; "
        "answered with rows in Arrow IPC form, or a RequestFailed.",
    ),
    Channel(
        subjects.STORE_FORGET,
        ForgetRequested,
        "receive",
        "Core request (`airparadis data forget`): erase the rows holding some personal data; "
        "answered with a DataForgotten (rows removed per table, the audit row), or a "
        "RequestFailed.",
    ),
    Channel(
        subjects.STORE_EXPORT,
        ExportRequested,
        "receive",
        "Core request (`airparadis data export`): everything held about one prediction; "
        "answered with a DataExported, or a RequestFailed.",
    ),
    Channel(
        subjects.PRIVACY_ERASED,
        DataErased,
        "send",
        "Core, not kept: rows were erased; the gateway drops them from its memory too.",
    ),
    Channel(
        subjects.STORE_INSERT,
        StoreInsertRequested,
        "receive",
        "Internal core request (embedded mode): the api_keys rows `airparadis keys` writes "
        "through the store worker; answered with an empty reply, or a RequestFailed.",
    ),
)


def _handler(message: type[BaseModel]) -> Any:
    async def receive(body: Any) -> None:
        """Documentation only: the workers' consumers are elsewhere."""

    # The payload's schema comes from the annotation (a real class: this module's annotations
    # are strings, which FastStream could not resolve here).
    receive.__annotations__ = {"body": message, "return": None}
    return receive


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus, as a dict."""
    broker = NatsBroker()
    for channel in CHANNELS:
        title, description = channel.subject, channel.description
        if channel.direction == "receive":
            subscriber = broker.subscriber(channel.subject, title=title, description=description)
            subscriber(_handler(channel.message))
        else:
            broker.publisher(
                channel.subject, schema=channel.message, title=title, description=description
            )
    specification = AsyncAPI(
        broker,
        title=TITLE,
        version=VERSION,
        description="Every subject of the Air Paradis platform on NATS JetStream, with the "
        "schema of its messages. Messages are JSON; each carries schema_version 1.",
        schema_version="3.0.0",
    ).to_specification()
    loaded: dict[str, Any] = json.loads(specification.to_json())
    return loaded


def document_text() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
