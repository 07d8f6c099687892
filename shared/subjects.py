"""The whole bus in one file: every subject, stream and durable consumer name."""

from __future__ import annotations

TWEETS_SUBMITTED = "tweets.submitted"
TWEETS_PREPROCESSED = "tweets.preprocessed"
TWEETS_SCORED = "tweets.scored"
# The challenger's scores of the same tweets (shadow scoring): stored, never answered.
TWEETS_SHADOW_SCORED = "tweets.shadow_scored"
FEEDBACK_REPORTED = "feedback.reported"
ALERTS_RAISED = "alerts.raised"
MODELS_PROMOTED = "models.promoted"
MODELS_THRESHOLD = "models.threshold"
# The gateway's summary of the requests its rate limits refused, one per window (not per
# request: a flood of refusals must not become a flood of messages).
GATEWAY_REFUSED = "gateway.refused"

DLQ_PREFIX = "dlq."

# Streams: (name, subjects). Every subject above is captured, so each step is durable.
STREAM_TWEETS = "TWEETS"
STREAM_FEEDBACK = "FEEDBACK"
STREAM_ALERTS = "ALERTS"
STREAM_MODELS = "MODELS"
STREAM_GATEWAY = "GATEWAY"
STREAM_DLQ = "DLQ"
STREAMS: dict[str, list[str]] = {
    STREAM_TWEETS: ["tweets.>"],
    STREAM_FEEDBACK: ["feedback.>"],
    STREAM_ALERTS: ["alerts.>"],
    STREAM_MODELS: ["models.>"],
    STREAM_GATEWAY: ["gateway.>"],
    STREAM_DLQ: ["dlq.>"],
}

# Durable consumers: one per worker and subject, shared by its replicas.
DURABLE_PREPROCESS = "preprocess"
DURABLE_INFER = "infer"
DURABLE_SHADOW = "infer-shadow"
DURABLE_STORE_PREDICTIONS = "store-predictions"
DURABLE_STORE_SHADOW = "store-shadow"
DURABLE_STORE_FEEDBACK = "store-feedback"
DURABLE_STORE_ALERTS = "store-alerts"
DURABLE_STORE_REFERENCES = "store-references"
DURABLE_STORE_THRESHOLDS = "store-thresholds"
DURABLE_STORE_REFUSALS = "store-refusals"
DURABLE_ALERTER = "alerter"
DURABLE_MAILER = "alerter-mailer"

# JetStream key-value bucket holding the alerter's sliding window.
KV_ALERTER = "alerter_state"

# Sync API: the gateway listens on its own inbox below this prefix.
REPLY_PREFIX = "_INBOX.airparadis"


def dead_letter_subject(subject: str) -> str:
    """Subject where messages from `subject` land when they cannot be processed."""
    return f"{DLQ_PREFIX}{subject}"


# Core request-reply: the gateway asks infer which model is serving, and why the model scores
# a tweet as it does. No stream captures rpc.> (a stream would answer the request with its own
# publish ack). Queue group: one infer replica answers each request.
INFER_STATUS = "rpc.infer.status"
EXPLAIN_REQUESTED = "rpc.infer.explain"
INFER_QUEUE = "infer"

# Reads of the embedded store: one process only may open a chDB folder, so the store worker
# answers the read-only queries of the others (gateway, alerter checks) when chDB is in use.
STORE_QUERY = "rpc.store.query"
STORE_QUEUE = "store"
# The one write the others make there: the API keys (`airparadis keys create/revoke` while the
# platform runs, and the gateway's /v1/keys). Only the tables in store_reads.BUS_WRITABLE.
STORE_INSERT = "rpc.store.insert"

# Erasure and access (`airparadis data forget / export`): the store worker, the one writer of
# ClickHouse, answers; after an erasure it tells the processes that keep recent predictions in
# memory (the gateway) on PRIVACY_ERASED, a core subject no stream keeps.
STORE_FORGET = "rpc.store.forget"
STORE_EXPORT = "rpc.store.export"
PRIVACY_ERASED = "privacy.erased"

# The ingress: subjects upstream apps publish on, with text as they wrote it, and the durable
# consumers that read them. Under text_storage scrubbed or none the store worker removes their
# messages from JetStream once every one of these consumers has acknowledged them.
INGRESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (STREAM_TWEETS, TWEETS_SUBMITTED, (DURABLE_PREPROCESS,)),
    (STREAM_FEEDBACK, FEEDBACK_REPORTED, (DURABLE_STORE_FEEDBACK, DURABLE_ALERTER)),
)
