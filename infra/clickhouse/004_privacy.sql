-- Right to erasure and access (shared/privacy.py, `airparadis data forget / export`).
--
-- audit: one row per request, erasure or export: who asked (the OS user, or --by), when, what
-- (a prediction's id, a date, or for a searched text only its SHA-256 and length: the text is
-- what is being erased), how many rows of each table it removed or returned, and which process
-- ran it. No TTL: it is the proof that requests were honoured (RGPD art. 5(2)) and holds no
-- tweet or comment.

CREATE TABLE IF NOT EXISTS {database}.audit
(
    id           String,
    at           DateTime64(3, 'UTC'),
    actor        String,
    action       LowCardinality(String),  -- forget | export
    selector     String,
    predictions  UInt64,
    feedback     UInt64,
    alerts       UInt64,
    via          LowCardinality(String)   -- store worker | command
)
ENGINE = ReplacingMergeTree
ORDER BY (at, id);
