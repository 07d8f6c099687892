"""Every payload on the bus, as a pydantic model with a schema version.

Events are named in the past tense. A consumer rejects a payload whose schema_version it does
not know: the message goes to the dead-letter subject with the validation error as the reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1
MAX_TWEET_CHARS = 1000
MAX_COMMENT_CHARS = 1000

Label = Literal["negative", "positive"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def _reject_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is empty or only whitespace")
    return text


TweetText = Annotated[
    str,
    Field(
        max_length=MAX_TWEET_CHARS, description=f"Tweet text, 1 to {MAX_TWEET_CHARS} characters."
    ),
    AfterValidator(_reject_blank),
]


class Event(BaseModel):
    """Base of every bus payload: strict about unknown versions, tolerant of extra fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class TextFeatures(BaseModel):
    """Model-independent features of a tweet, used for drift monitoring."""

    model_config = ConfigDict(frozen=True)

    length: int
    n_words: int
    n_urls: int
    n_mentions: int
    n_hashtags: int
    n_emojis: int


class TweetSubmitted(Event):
    """A tweet to score. Upstream apps publish it on tweets.submitted."""

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    text: TweetText
    source: str = Field("api", max_length=64)
    submitted_at: datetime = Field(default_factory=utc_now)
    reply_to: str | None = Field(
        None, description="NATS subject that receives the TweetScored (or the error) directly."
    )


class TweetPreprocessed(Event):
    """A validated, normalised tweet with its features."""

    id: str
    text: str
    normalized_text: str
    features: TextFeatures
    source: str
    submitted_at: datetime
    reply_to: str | None = None


class TweetScored(Event):
    """The model's answer for one tweet."""

    id: str
    text: str
    features: TextFeatures
    source: str
    label: Label
    probability: float = Field(
        ge=0, le=1, description="Probability that readers take it as positive."
    )
    threshold: float = Field(ge=0, le=1)
    model_name: str
    model_version: str
    submitted_at: datetime
    scored_at: datetime
    latency_ms: float
    batch_size: int
    oov_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of the tweet's words outside the model's vocabulary; None when the "
        "model has no word vocabulary or the tweet no word.",
    )


class PredictionSnapshot(BaseModel):
    """What a feedback report refers to: the prediction as it was served."""

    model_config = ConfigDict(frozen=True)

    text: str
    label: Label
    probability: float
    threshold: float
    model_name: str
    model_version: str
    scored_at: datetime

    @classmethod
    def of(cls, scored: TweetScored) -> PredictionSnapshot:
        return cls.model_validate(scored.model_dump(include=set(cls.model_fields)))


class FeedbackReported(Event):
    """A user says a prediction was wrong."""

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    prediction_id: str = Field(min_length=1, max_length=64)
    correct_label: Label | None = None
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)
    reported_at: datetime = Field(default_factory=utc_now)
    prediction: PredictionSnapshot


AlertKind = Literal["wrong_predictions", "drift", "error_rate"]


class AlertRaised(Event):
    """Something the team must hear about; the alerter emails it."""

    id: str = Field(default_factory=new_id)
    kind: AlertKind
    raised_at: datetime = Field(default_factory=utc_now)
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


class ModelPromoted(Event):
    """A registered model version now holds an alias (champion)."""

    model_name: str
    version: str
    alias: str = "champion"
    promoted_at: datetime = Field(default_factory=utc_now)


class ExplainRequested(Event):
    """Which words push this tweet toward positive or negative? (request-reply, not stored)"""

    text: TweetText
    budget_ms: int = Field(1500, ge=50, le=30_000, description="Time budget of the explanation.")


class WordContribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    word: str
    start: int = Field(description="Offset of the word in the tweet, in characters.")
    end: int
    contribution: float = Field(
        description="Push toward positive (>0) or negative (<0): log-odds for linear models, "
        "probability points for occlusion."
    )


class ExplanationReady(Event):
    """The answer to an ExplainRequested."""

    probability: float
    label: Label
    threshold: float
    model_name: str
    model_version: str
    method: Literal["linear", "occlusion"]
    complete: bool = Field(description="False when the time budget cut the explanation short.")
    words: list[WordContribution]
    elapsed_ms: float


class ScoringFailed(Event):
    """Sent to a caller's reply subject when its tweet cannot be scored."""

    id: str
    reason: str


class DeadLetter(Event):
    """A message no worker could process, with the reason and the original payload."""

    subject: str
    reason: str
    worker: str
    deliveries: int
    payload: str = Field(description="Original payload, decoded as UTF-8 with replacement.")
    payload_base64: str | None = Field(
        None, description="Original bytes, base64, when they were not valid UTF-8."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: datetime = Field(default_factory=utc_now)
