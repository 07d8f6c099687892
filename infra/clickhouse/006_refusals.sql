-- Requests the gateways' rate limits refused (429), for Grafana: one row per gateway.refused
-- summary (services/gateway/refusals.py) and limit, kind of bucket and key name. A gateway sums
-- its refusals over a window and publishes one summary, so a flood of refused requests is a few
-- rows, not one per request. No client address: a refusal by address names no one.
--
-- A redelivered summary carries the same id, window and counts: its rows share their key and
-- partition, and the store adds nothing for an id it holds already. Reads that must be exact
-- use FINAL.

CREATE TABLE IF NOT EXISTS {database}.refusals
(
    id           String,                  -- the summary's id, also its Nats-Msg-Id
    gateway      LowCardinality(String),  -- the gateway instance that refused
    window_start DateTime64(3, 'UTC'),    -- the first refusal counted in the summary
    window_end   DateTime64(3, 'UTC'),    -- when the summary was closed
    rate_limit   LowCardinality(String),  -- api | feedback
    who          LowCardinality(String),  -- key | address (whose bucket was empty)
    key_name     LowCardinality(String),  -- the key's name for a refusal by key, else ''
    refused      UInt32                   -- requests refused
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_end)
ORDER BY (toStartOfHour(window_end), id, rate_limit, who, key_name)
TTL window_end + INTERVAL {retention_days} DAY;
