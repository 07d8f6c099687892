-- Precision on live traffic (shared/shift.py).
--
-- operating_curve: at promotion, the version's true- and false-positive rates at each threshold,
-- measured on its labelled test split, with the counts they come from. With the prior estimated
-- from live predictions they give the live precision of any threshold. Saving a version's curve
-- again replaces it (latest created_at wins). No TTL: small, and it must outlive predictions.

CREATE TABLE IF NOT EXISTS {database}.operating_curve
(
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    threshold     Float64,
    tpr           Float64,
    fpr           Float64,
    positives     UInt32,
    negatives     UInt32,
    created_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (model_name, model_version, threshold);

-- thresholds: every models.threshold event, one per check round of the alerter: the estimated
-- prior and precision (with their intervals) at the threshold in use, and the threshold infer
-- applies from then on (the same one in `fixed` mode). Its history is the answer to "which
-- threshold scored this tweet, and why".

CREATE TABLE IF NOT EXISTS {database}.thresholds
(
    id               String,
    model_name       LowCardinality(String),
    model_version    LowCardinality(String),
    estimated_at     DateTime64(3, 'UTC'),
    mode             LowCardinality(String),
    method           LowCardinality(String),
    tweets           UInt32,
    prior            Float64,
    prior_low        Float64,
    prior_high       Float64,
    precision        Float64,
    precision_low    Float64,
    precision_high   Float64,
    recall           Float64,
    target_precision Float64,
    threshold_in_use Float64,
    threshold        Float64,
    changed          Bool,
    reached          Bool,
    reason           String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(estimated_at)
ORDER BY (model_name, estimated_at, id)
TTL estimated_at + INTERVAL {retention_days} DAY;
