-- API keys (shared/keys.py), and which key made each prediction and report.
--
-- api_keys: one row per key as created; revoking inserts the same row again with revoked_at
-- set. Reads group by key_id and take the earliest revoked_at, so a key once revoked stays
-- revoked whether or not the rows were merged. Only the SHA-256 of each key is kept: the key
-- itself is shown once, by `airparadis keys create`. No TTL: a key lives until revoked, and
-- its row must outlive the predictions that name it.

CREATE TABLE IF NOT EXISTS {database}.api_keys
(
    key_id     String,                          -- the non-secret id inside the key
    name       String,                          -- names one key for good
    key_hash   String,                          -- SHA-256 of the whole key, hex
    scopes     Array(LowCardinality(String)),   -- predict, feedback, monitor, admin
    created_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id;

-- The name of the key a prediction or report came through ('' when none: auth off, or an
-- upstream app publishing on the bus directly).
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS key_name LowCardinality(String);
ALTER TABLE {database}.feedback ADD COLUMN IF NOT EXISTS key_name LowCardinality(String);
