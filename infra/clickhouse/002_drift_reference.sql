-- Drift monitoring: the training reference of each model version, and the out-of-vocabulary
-- rate of each prediction. shared/monitoring.py computes the PSI of live predictions against it.
--
-- drift_reference: at promotion, the binned distributions of the version's validation set
-- (predicted probability, text features), one row per feature and bin; bin i holds the values
-- in [lower, upper) and the edges are stored so the SQL bins live values the same way.
-- Saving a version's reference again replaces it: the key is (model, version, feature, bin)
-- and the latest created_at wins. No TTL: a reference is small and must outlive predictions.

CREATE TABLE IF NOT EXISTS {database}.drift_reference
(
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    feature       LowCardinality(String),
    bin           UInt16,
    lower         Float64,
    upper         Float64,  -- inf for an open-ended last bin
    share         Float64,  -- share of the validation tweets in this bin
    observations  UInt32,   -- validation tweets the shares come from
    created_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (model_name, model_version, feature, bin);

-- Share of a tweet's tokens outside the serving model's vocabulary, filled by the infer worker.
-- NULL means "not measured" (rows stored before this column, a model without a vocabulary):
-- the PSI leaves those rows out instead of reading them as 0 % and raising a false drift.
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS oov_rate Nullable(Float32) AFTER n_emojis;
