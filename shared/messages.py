"""Every payload on the bus, as a pydantic model with a schema version.

Events are named in the past tense. A consumer rejects a payload whose schema_version it does
not know: the message goes to the dead-letter subject with the validation error as the reason.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.subjects import REPLY_PREFIX

SCHEMA_VERSION: Literal[1] = 1
MAX_TWEET_CHARS = 1000
MAX_COMMENT_CHARS = 1000

Label = Literal["negative", "positive"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


# A tweet must hold one visible character: not whitespace, not a control or format character
# (zero-width space, direction marks, BOM), not a combining mark with nothing to combine with
# (accents, enclosing marks), not a private-use code point. The same expression is the
# `pattern` of the text in the JSON Schema, so clients and fuzzers know it.
VISIBLE_CHARACTER = (
    "[^\\s\\x00-\\x1f\\x7f-\\x9f\\xad\\u0300-\\u036f\\u0483-\\u0489\\u0600-\\u0605\\u061c"
    "\\u06dd\\u070f\\u180e\\u1ab0-\\u1aff\\u1dc0-\\u1dff\\u200b-\\u200f\\u202a-\\u202e"
    "\\u2060-\\u2064\\u2066-\\u206f\\u20d0-\\u20ff\\ufe20-\\ufe2f\\ufeff\\ufff9-\\ufffb"
    "\\ue000-\\uf8ff]"
)
_VISIBLE = re.compile(VISIBLE_CHARACTER)


def _reject_blank(text: str) -> str:
    if not _VISIBLE.search(text):
        raise ValueError(
            "text is empty or has only whitespace, invisible characters and combining marks"
        )
    return text


# Answers to synchronous callers go below the reply prefix only: a reply_to anywhere else
# could make a worker publish into the platform's own subjects.
_REPLY_SUBJECT = re.compile(re.escape(REPLY_PREFIX) + r"(\.[A-Za-z0-9_-]{1,64}){1,4}\Z")


def _reply_under_inbox(subject: str | None) -> str | None:
    if subject is not None and not _REPLY_SUBJECT.match(subject):
        raise ValueError(
            f"reply_to must be a subject below {REPLY_PREFIX}. (letters, digits, - and _ "
            "between the dots)"
        )
    return subject


ReplySubject = Annotated[
    str | None,
    Field(
        None,
        max_length=200,
        description=f"NATS subject below {REPLY_PREFIX}. that receives the TweetScored (or the "
        "error) directly.",
    ),
    AfterValidator(_reply_under_inbox),
]


# Ids travel in NATS headers (Nats-Msg-Id) and subjects: a safe alphabet only.
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description="1 to 64 letters, digits, '_', '.', ':' or '-'.",
    ),
]

# The name of the API key a request came through (shared/keys.py); it travels with the tweet
# or report it made, the key itself never does.
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KeyName = Annotated[
    str | None,
    Field(
        None,
        max_length=64,
        pattern=KEY_NAME_PATTERN,
        description="Name of the API key the request came through (None: no key).",
    ),
]

TweetText = Annotated[
    str,
    Field(
        max_length=MAX_TWEET_CHARS,
        description=f"Tweet text, 1 to {MAX_TWEET_CHARS} characters, at least one visible.",
        # Checked by _reject_blank, with a reason a person reads.
        json_schema_extra={"minLength": 1, "pattern": VISIBLE_CHARACTER},
    ),
    AfterValidator(_reject_blank),
]


def tweet_text_schema() -> dict[str, Any]:
    """The JSON Schema of a TweetText, for a field that declares its schema by hand."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TWEET_CHARS,
        "pattern": VISIBLE_CHARACTER,
        "description": f"Tweet text, 1 to {MAX_TWEET_CHARS} characters, at least one visible.",
    }


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


LanguageStatus = Literal["detected", "uncertain", "too_short"]


class LanguageGuess(BaseModel):
    """The language preprocess detected in a tweet (shared/language.py)."""

    model_config = ConfigDict(frozen=True)

    code: str | None = Field(
        None,
        pattern=r"^[a-z]{2,3}$",
        description="ISO 639-1 code of the most likely language; None when too short to tell.",
    )
    confidence: float = Field(0.0, ge=0, le=1, description="The detector's probability of it.")
    status: LanguageStatus = Field(
        description="detected (confident), uncertain (below the confidence floor) or too_short "
        "(too few letters to tell: no guess)."
    )


class TweetSubmitted(Event):
    """A tweet to score. Upstream apps publish it on tweets.submitted."""

    id: EventId = Field(default_factory=new_id)
    text: TweetText
    source: str = Field("api", max_length=64)
    submitted_at: datetime = Field(default_factory=utc_now)
    reply_to: ReplySubject = None
    key_name: KeyName = None


class TweetPreprocessed(Event):
    """A validated tweet with its features (the model normalises the text itself)."""

    id: str
    text: str
    features: TextFeatures
    source: str
    submitted_at: datetime
    reply_to: ReplySubject = None
    key_name: KeyName = None
    language: LanguageGuess | None = Field(None, description="None from older producers.")


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
    key_name: KeyName = None
    language: LanguageGuess | None = None
    reliable: bool = Field(
        True,
        description="False when the tweet is confidently in a language the model did not learn: "
        "its label is then a guess.",
    )
    reliability_note: str | None = Field(
        None, description="Why it is unreliable, or what could not be told, in plain words."
    )


class ShadowScored(Event):
    """The challenger's score of a tweet the champion answered: stored beside the champion's
    prediction (same tweet id), never sent to a caller."""

    id: str = Field(description="Of this shadow prediction: the version and the tweet's id.")
    prediction_id: str = Field(description="The tweet's id, the champion's prediction's.")
    model_name: str
    model_version: str
    label: Label
    probability: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    submitted_at: datetime
    scored_at: datetime


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
    latency_ms: float | None = Field(None, description="From submission to scoring.")
    language: LanguageGuess | None = None
    reliable: bool = True
    reliability_note: str | None = None

    @classmethod
    def of(cls, scored: TweetScored) -> PredictionSnapshot:
        return cls.model_validate(scored.model_dump(include=set(cls.model_fields)))


class FeedbackReported(Event):
    """A user says a prediction was wrong."""

    id: EventId = Field(default_factory=new_id)
    prediction_id: EventId
    correct_label: Label | None = None
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)
    reported_at: datetime = Field(default_factory=utc_now)
    prediction: PredictionSnapshot
    key_name: KeyName = None


AlertKind = Literal["wrong_predictions", "drift", "error_rate", "precision_risk", "language_shift"]


class AlertRaised(Event):
    """Something the team must hear about; the alerter emails it."""

    id: str = Field(default_factory=new_id)
    kind: AlertKind
    raised_at: datetime = Field(default_factory=utc_now)
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


class ModelPromoted(Event):
    """A registered model version now holds an alias (champion, or challenger: scored in
    shadow), or, with `removed`, no longer holds it and nobody does."""

    model_name: str
    version: str
    alias: str = "champion"
    removed: bool = Field(
        False,
        description="True: `version` lost the alias and no version holds it now (`airparadis "
        "models unset-alias`, or the challenger made champion); workers following it stop.",
    )
    promoted_at: datetime = Field(default_factory=utc_now)


class ThresholdSet(Event):
    """models.threshold: the precision of a version on live traffic, estimated from its recent
    predictions, and the threshold infer applies to it from now on (shared/shift.py).

    Published by the alerter every check round; infer applies `threshold` between batches, the
    store keeps the history."""

    id: str = Field(default_factory=new_id)
    model_name: str
    model_version: str
    estimated_at: datetime = Field(default_factory=utc_now)
    mode: Literal["fixed", "adaptive"]
    method: Literal["em", "bbse"] = Field(description="How the share of positives was estimated.")
    tweets: int = Field(ge=1, description="Recent predictions the estimate comes from.")
    prior: float = Field(ge=0, le=1, description="Estimated share of positive tweets.")
    prior_low: float
    prior_high: float
    precision: float | None = Field(
        description="Estimated precision at threshold_in_use (None: nothing called positive)."
    )
    precision_low: float | None
    precision_high: float | None
    recall: float
    target_precision: float
    threshold_in_use: float
    threshold: float | None = Field(
        description="The threshold to apply from now on; None: the version's own (fixed mode)."
    )
    changed: bool
    reached: bool = Field(description="False when no threshold within bounds gives the target.")
    reason: str


LimitName = Literal["api", "feedback"]
Who = Literal["key", "address"]
# Counts in one summary at most (about 130 bytes each): more wait for the next summary.
MAX_REFUSAL_COUNTS = 256


class RefusalCount(BaseModel):
    """Requests refused for one limit, by one kind of bucket, in a window."""

    model_config = ConfigDict(frozen=True)

    limit: LimitName = Field(
        description="api (predict, explain, monitor, keys) or feedback (wrong-prediction reports)."
    )
    who: Who = Field(
        description="Whose bucket was empty: the API key's, or the client address's (counted "
        "before the key is read)."
    )
    key_name: str = Field(
        "",
        max_length=64,
        pattern=f"^$|{KEY_NAME_PATTERN}",
        description="The key's name when its own bucket refused; '' for a refusal by client "
        "address (the address itself never travels: it is personal data).",
    )
    count: int = Field(ge=1, description="Requests refused.")

    @model_validator(mode="after")
    def _key_only_by_key(self) -> RefusalCount:
        if (self.who == "key") != bool(self.key_name):
            raise ValueError("key_name names the key of a refusal by key, and only then")
        return self


class RequestsRefused(Event):
    """gateway.refused: the requests one gateway refused for their rate (429) in a window, summed
    per limit, per kind of bucket and per key name. Published every refusals_flush_s while
    there are refusals to report; the store keeps them in the refusals table (Grafana)."""

    id: EventId = Field(
        description="<gateway>-<window number>: also the Nats-Msg-Id, so a retry of the same "
        "window is stored once."
    )
    gateway: EventId = Field(description="The gateway instance that refused (one per process).")
    window_start: datetime = Field(description="The first refusal counted here, UTC.")
    window_end: datetime = Field(description="When the window was closed, UTC.")
    counts: list[RefusalCount] = Field(min_length=1, max_length=MAX_REFUSAL_COUNTS)

    @model_validator(mode="after")
    def _one_window(self) -> RequestsRefused:
        if self.window_start.tzinfo is None or self.window_end.tzinfo is None:
            raise ValueError("window_start and window_end must carry a time zone (UTC is fine)")
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        keys = [(c.limit, c.who, c.key_name) for c in self.counts]
        if len(set(keys)) != len(keys):
            raise ValueError("counts name the same limit, who and key_name more than once")
        return self

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)


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
    payload: str = Field(
        description="Original payload (its first bytes when truncated), decoded as UTF-8 with "
        "replacement."
    )
    payload_base64: str | None = Field(
        None, description="The same bytes, base64, when they were not valid UTF-8."
    )
    payload_bytes: int = Field(0, ge=0, description="Size of the whole original payload.")
    payload_sha256: str = Field("", description="SHA-256 of the whole original payload.")
    truncated: bool = Field(False, description="Only the first bytes of the payload are kept.")
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: datetime = Field(default_factory=utc_now)


FailureKind = Literal["invalid_request", "model_not_ready", "unavailable", "too_large"]


class RequestFailed(Event):
    """The answer to a core request (explain, a store read) that could not be served."""

    kind: FailureKind = Field(
        description="invalid_request: the request itself is wrong (fix it); model_not_ready: "
        "no model is loaded yet; unavailable: a dependency is down (try again); too_large: "
        "the answer would not fit in a message."
    )
    reason: str


class InferStatus(Event):
    """infer's answer on rpc.infer.status: whether a model serves, and which."""

    ready: bool
    model_name: str | None = None
    model_version: str | None = None
    threshold: float | None = None


class StoreQueryRequested(Event):
    """A read-only query for the store worker (embedded mode); answered with the rows in Arrow
    IPC form, or a RequestFailed."""

    sql: str = Field(max_length=100_000)
    parameters: dict[str, str | int | float | list[str] | None] = Field(default_factory=dict)


class StoreInsertRequested(Event):
    """Rows for the store worker to insert (embedded mode), into a table the others may write
    through it (the API keys); answered with an empty message, or a RequestFailed."""

    table: Literal["api_keys"]
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=100)


# --- Right to erasure and access (airparadis data forget / export, shared/privacy.py) ---


class DataSelector(BaseModel):
    """Which personal data a request is about: exactly one of a prediction's id, a text its
    tweet or a report contains (case-insensitive), or everything stored before a moment."""

    model_config = ConfigDict(frozen=True)

    prediction_id: EventId | None = None
    text_contains: str | None = Field(None, min_length=1, max_length=MAX_TWEET_CHARS)
    before: datetime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSelector:
        given = [v for v in (self.prediction_id, self.text_contains, self.before) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of prediction_id, text_contains or before")
        if self.text_contains is not None and not _VISIBLE.search(self.text_contains):
            raise ValueError("text_contains must hold a visible character")
        if self.before is not None and self.before.tzinfo is None:
            raise ValueError("before must carry a time zone (UTC is fine)")
        return self

    def audited(self) -> str:
        """What the audit keeps of the request: the id or the date, but never the searched text
        itself (it is what is being erased): its SHA-256 and length."""
        if self.prediction_id is not None:
            return f"prediction_id={self.prediction_id}"
        if self.before is not None:
            return f"before={self.before.isoformat()}"
        text = self.text_contains or ""
        digest = hashlib.sha256(text.casefold().encode()).hexdigest()[:16]
        return f"text_contains=sha256:{digest} ({len(text)} characters)"


Requester = Annotated[
    str, Field(min_length=1, max_length=200, description="Who asks: a person or a role.")
]


class ForgetRequested(Event):
    """rpc.store.forget: remove the rows holding this data (erasure, RGPD art. 17)."""

    selector: DataSelector
    requested_by: Requester


class ExportRequested(Event):
    """rpc.store.export: everything held about one prediction (access, RGPD art. 15)."""

    prediction_id: EventId
    requested_by: Requester


class DataForgotten(Event):
    """The answer to a ForgetRequested: rows removed from each table, and the audit row."""

    kind: Literal["forgotten"] = "forgotten"
    predictions: int = Field(ge=0)
    feedback: int = Field(ge=0)
    alerts: int = Field(ge=0)
    audit_id: str


class DataExported(Event):
    """The answer to an ExportRequested: the prediction's row (None when none is held), the
    reports about it and the alerts that quote them, values in JSON form."""

    kind: Literal["exported"] = "exported"
    prediction_id: str
    prediction: dict[str, Any] | None
    feedback: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    audit_id: str

    @property
    def empty(self) -> bool:
        return self.prediction is None and not self.feedback and not self.alerts


class DataErased(Event):
    """privacy.erased (core NATS, not kept): rows matching `selector` were removed; a process
    that keeps recent predictions in memory (the gateway) drops them too."""

    selector: DataSelector
