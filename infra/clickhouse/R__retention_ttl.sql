-- Repeatable migration: the runner re-applies it whenever its filled-in text changes, that is
-- when the retention_days setting changes, so a restart with a new retention moves every TTL.
-- ClickHouse then drops the rows that fall outside the new window (RGPD).

ALTER TABLE {database}.predictions MODIFY TTL scored_at + INTERVAL {retention_days} DAY;
ALTER TABLE {database}.feedback MODIFY TTL reported_at + INTERVAL {retention_days} DAY;
ALTER TABLE {database}.alerts MODIFY TTL raised_at + INTERVAL {retention_days} DAY;
ALTER TABLE {database}.thresholds MODIFY TTL estimated_at + INTERVAL {retention_days} DAY;
ALTER TABLE {database}.shadow_predictions MODIFY TTL scored_at + INTERVAL {retention_days} DAY;
ALTER TABLE {database}.refusals MODIFY TTL window_end + INTERVAL {retention_days} DAY;
