-- Predictions, user feedback and alerts: the platform's one store, plus the runner's ledger.
-- Applied by shared/storage.py:apply_migrations, which fills {database} and {retention_days}.
--
-- Re-delivery never duplicates a row: every table is a ReplacingMergeTree whose ORDER BY key
-- (its deduplication key) ends with the event id, and a message redelivered by JetStream
-- carries the same id and the same timestamp, so both copies share one key and one partition.
-- Merges collapse them in the background; reads that must be exact use FINAL.
-- The key starts with the hour so that time-range queries (Grafana) read only the parts they need.
-- Retention (RGPD) is a TTL; R__retention_ttl.sql keeps it in line with the setting.

CREATE TABLE IF NOT EXISTS {database}.schema_migrations
(
    version    String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version;

CREATE TABLE IF NOT EXISTS {database}.predictions
(
    id            String,
    text          String,
    source        LowCardinality(String),
    label         LowCardinality(String),
    probability   Float64,
    threshold     Float64,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    submitted_at  DateTime64(3, 'UTC'),
    scored_at     DateTime64(3, 'UTC'),
    latency_ms    Float64,
    batch_size    UInt16,
    length        UInt32,
    n_words       UInt16,
    n_urls        UInt16,
    n_mentions    UInt16,
    n_hashtags    UInt16,
    n_emojis      UInt16,
    -- a feedback report looks its prediction up by id alone
    INDEX id_bloom id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(scored_at)
ORDER BY (toStartOfHour(scored_at), id)
TTL scored_at + INTERVAL {retention_days} DAY;

CREATE TABLE IF NOT EXISTS {database}.feedback
(
    id            String,
    prediction_id String,
    correct_label LowCardinality(Nullable(String)),
    comment       String,
    reported_at   DateTime64(3, 'UTC'),
    -- the prediction as it was served, so a report stands alone after the prediction expires
    text          String,
    label         LowCardinality(String),
    probability   Float64,
    threshold     Float64,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    scored_at     DateTime64(3, 'UTC'),
    INDEX prediction_id_bloom prediction_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(reported_at)
ORDER BY (toStartOfHour(reported_at), id)
TTL reported_at + INTERVAL {retention_days} DAY;

CREATE TABLE IF NOT EXISTS {database}.alerts
(
    id        String,
    kind      LowCardinality(String),
    raised_at DateTime64(3, 'UTC'),
    summary   String,
    details   String  -- JSON object, as sent in the alert email
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(raised_at)
ORDER BY (toStartOfHour(raised_at), id)
TTL raised_at + INTERVAL {retention_days} DAY;
