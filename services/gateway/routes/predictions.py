"""POST /v1/predict (one tweet or a list, through the pipeline) and GET /v1/predictions/{id}.

A tweet goes out on tweets.submitted with a reply subject of this gateway and the answer comes
back there once infer stored the score in JetStream. What the caller hears says what happened:
- 200: scored;
- 503 (Retry-After): the bus did not take the tweet; nothing will be stored;
- 504 (with the id): the bus took it but the answer is late; GET /v1/predictions/{id} later.
With an `Idempotency-Key`, the tweet's id derives from the key (and from the API key's name, so
two API keys never share one): a retry with the same key is answered with the same prediction
and stores nothing new; with another text, it is a 409.

The text is minimised here, before it is published (shared/scrub.py, `text_storage`): the model
scores the scrubbed text, and the answer carries the text as the platform kept it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import WithJsonSchema

from services.gateway.context import Gateway, GatewayDep
from services.gateway.errors import GUARDED, ApiError, bus_unavailable, responses, unavailable
from services.gateway.security import Caller, Require
from shared import subjects
from shared.jetstream import Outgoing
from shared.messages import (
    ID_PATTERN,
    MAX_TWEET_CHARS,
    Label,
    LanguageGuess,
    PredictionSnapshot,
    ScoringFailed,
    TweetSubmitted,
    TweetText,
    new_id,
    tweet_text_schema,
)

router = APIRouter(prefix="/v1", tags=["predictions"])

MAX_TWEETS_PER_REQUEST = 64
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
TWEET_SCHEMA = tweet_text_schema()

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Any 1 to 128 visible ASCII characters. A retry with the same key gets the "
        "same answer and stores nothing new.",
    ),
]


class PredictRequest(BaseModel):
    """One tweet in `text`, or several in `texts`: exactly one of the two."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["texts"]}]},
    )

    # Optional in Python, never null on the wire: the schema says so (a null is refused).
    text: Annotated[TweetText | None, WithJsonSchema(TWEET_SCHEMA)] = Field(
        None, description="One tweet."
    )
    texts: Annotated[
        Annotated[list[TweetText], Field(min_length=1, max_length=MAX_TWEETS_PER_REQUEST)] | None,
        WithJsonSchema(
            {
                "type": "array",
                "items": TWEET_SCHEMA,
                "minItems": 1,
                "maxItems": MAX_TWEETS_PER_REQUEST,
            }
        ),
    ] = Field(None, description=f"1 to {MAX_TWEETS_PER_REQUEST} tweets, answered in order.")

    @field_validator("text", "texts", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        if value is None:  # only a value sent as null reaches here (defaults are not validated)
            raise ValueError("must not be null: leave the field out instead")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (one tweet) or 'texts' (a list)")
        return self


class Prediction(BaseModel):
    id: str
    text: str
    label: Label
    probability: float = Field(description="Probability that readers take the tweet as positive.")
    threshold: float = Field(description="Decision threshold of the model (precision target).")
    model_name: str
    model_version: str
    latency_ms: float = Field(
        description="Time from submission to answer, measured by the gateway (for a stored "
        "prediction: from submission to scoring)."
    )
    language: LanguageGuess | None = Field(
        None,
        description="The tweet's language as detected (code None and status too_short when it "
        "is too short to tell); None for predictions made before detection.",
    )
    reliable: bool = Field(
        True,
        description="False when the tweet is confidently in a language the model did not learn "
        "(every model here learnt English): the label is then a guess.",
    )
    reliability_note: str | None = Field(
        None,
        description="Why the label is unreliable, or that the language could not be told, in "
        "plain words for the reader.",
    )

    @classmethod
    def of(cls, prediction_id: str, snapshot: PredictionSnapshot, latency_ms: float) -> Prediction:
        return cls(
            id=prediction_id,
            latency_ms=round(latency_ms, 2),
            **snapshot.model_dump(include=set(cls.model_fields) - {"id", "latency_ms"}),
        )


class Predictions(BaseModel):
    predictions: list[Prediction]


Predictor = Annotated[Caller, Depends(Require("predict"))]


def idempotent_id(idempotency_key: str, key_name: str | None, *parts: str) -> str:
    """The id an idempotency key gives, within the API key's own namespace (none: keys off)."""
    scoped = [*parts, idempotency_key] if key_name is None else [*parts, key_name, idempotency_key]
    return hashlib.sha256("\x00".join(scoped).encode()).hexdigest()[:32]


def tweet_id(idempotency_key: str | None, index: int, key_name: str | None = None) -> str:
    """A new id, or the one the idempotency key (and the tweet's place in the list) gives."""
    if idempotency_key is None:
        return new_id()
    if key_name is None:  # as before keys existed: the same key gives the same id
        return hashlib.sha256(f"{idempotency_key}\x00{index}".encode()).hexdigest()[:32]
    return idempotent_id(idempotency_key, key_name, "predict", str(index))


async def known(gw: Gateway, prediction_id: str) -> PredictionSnapshot | None:
    """The prediction if this gateway served it lately or the store has it."""
    snapshot = gw.recent.get(prediction_id)
    if snapshot is not None:
        return snapshot
    try:
        return await gw.repository.get_prediction(prediction_id)
    except Exception as error:
        raise unavailable("store_unavailable", f"the store did not answer: {error}") from error


async def score(
    gw: Gateway, text: str, prediction_id: str, keyed: bool, key_name: str | None = None
) -> Prediction:
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000.0

    text = gw.minimised(text, "text", MAX_TWEET_CHARS)
    if keyed and (done := await known(gw, prediction_id)) is not None:
        # Under text_storage=none the store keeps no text to compare with ("").
        if done.text and done.text != text:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was used for another text; use a new key",
                id=prediction_id,
            )
        return Prediction.of(prediction_id, done, elapsed_ms())
    if not gw.connection.connected:
        raise bus_unavailable("is not connected")
    settings = gw.settings
    tweet = TweetSubmitted(
        id=prediction_id,
        text=text,
        source="gateway",
        reply_to=gw.replies.subject_for(prediction_id),
        key_name=key_name,
    )
    answer = gw.replies.expect(prediction_id)
    try:
        published = await gw.publisher.publish_one(
            Outgoing(subjects.TWEETS_SUBMITTED, tweet.model_dump_json().encode(), prediction_id),
            settings.publish_timeout_s,
        )
        if not published.ok and not published.unconfirmed:
            raise bus_unavailable(f"did not take the tweet: {published.error}")
        if published.unconfirmed:
            raise late(prediction_id, "the message bus did not confirm it took the tweet")
        try:
            result = await asyncio.wait_for(answer, timeout=settings.predict_timeout_s)
        except TimeoutError:
            if keyed and (done := await known(gw, prediction_id)) is not None:
                return Prediction.of(prediction_id, done, elapsed_ms())
            raise late(
                prediction_id,
                f"the tweet was accepted but not scored within {settings.predict_timeout_s:g} s",
            ) from None
    finally:
        gw.replies.forget(prediction_id, answer)
    if isinstance(result, ScoringFailed):
        raise ApiError(422, "unscorable", result.reason, id=prediction_id)
    snapshot = PredictionSnapshot.of(result)
    gw.recent.add(prediction_id, snapshot)
    return Prediction.of(prediction_id, snapshot, elapsed_ms())


def late(prediction_id: str, what: str) -> ApiError:
    return ApiError(
        504,
        "timeout",
        f"{what}; fetch the result later from GET /v1/predictions/{prediction_id} (404 until "
        "it is stored), or retry with the same Idempotency-Key",
        id=prediction_id,
        headers={"Location": f"/v1/predictions/{prediction_id}"},
    )


@router.post(
    "/predict",
    response_model=Prediction | Predictions,
    responses=responses(400, 409, 413, 422, *GUARDED, 503, 504),
)
async def predict(
    request: PredictRequest,
    gw: GatewayDep,
    caller: Predictor,
    idempotency_key: IdempotencyKey = None,
) -> Prediction | Predictions:
    """Score one tweet (`text`) or up to 64 (`texts`) through the pipeline."""
    keyed = idempotency_key is not None
    name = caller.key_name
    if request.text is not None:
        return await score(gw, request.text, tweet_id(idempotency_key, 0, name), keyed, name)
    texts = request.texts or []
    scored = await asyncio.gather(
        *(
            score(gw, text, tweet_id(idempotency_key, i, name), keyed, name)
            for i, text in enumerate(texts)
        )
    )
    return Predictions(predictions=list(scored))


@router.get(
    "/predictions/{prediction_id}",
    response_model=Prediction,
    responses=responses(404, 422, *GUARDED, 503),
)
async def get_prediction(
    prediction_id: Annotated[str, Path(pattern=ID_PATTERN, description="The prediction's id.")],
    gw: GatewayDep,
    caller: Predictor,
) -> Prediction:
    """A prediction as it was served (from this gateway's memory or the store)."""
    snapshot = await known(gw, prediction_id)
    if snapshot is None:
        raise ApiError(
            404,
            "unknown_prediction",
            f"no prediction with id {prediction_id!r} (not stored yet, or expired)",
        )
    return Prediction.of(prediction_id, snapshot, snapshot.latency_ms or 0.0)
