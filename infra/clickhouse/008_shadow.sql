-- Shadow scoring (services/infer/handler.py, ShadowHandler): the challenger's score of every
-- tweet the champion scored while it was the challenger. One row per (tweet, challenger
-- version); `prediction_id` is the champion's prediction's id, to join with `predictions`. No
-- text: the tweet is the champion's row's. Never answered to a caller; the monitor and the
-- Quality dashboard compare the two versions on the same tweets.

CREATE TABLE IF NOT EXISTS {database}.shadow_predictions
(
    id            String,                   -- the challenger version and the tweet's id
    prediction_id String,
    model_name    LowCardinality(String),
    model_version LowCardinality(String),
    label         LowCardinality(String),
    probability   Float32,
    threshold     Float32,
    submitted_at  DateTime64(3, 'UTC'),
    scored_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(scored_at)
ORDER BY (prediction_id, model_version);
