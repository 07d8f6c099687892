-- Repeatable migration: re-applied whenever AIRPARADIS_CLICKHOUSE_FSYNC changes.
--
-- By default ClickHouse (and chDB, the same engine) writes each inserted part to files and
-- returns without fsync: a power cut or kernel crash can lose parts written in the last seconds
-- even though the insert returned, and the store worker has acked their messages by then. With
-- {fsync} = 1 every insert fsyncs its part's files and directory before it returns, so what the
-- store acked is on disk. The store inserts batches (up to AIRPARADIS_STORE_BATCH_SIZE rows, at
-- most every AIRPARADIS_STORE_FLUSH_MS), so this costs one fsync per batch, not per row.

ALTER TABLE {database}.predictions MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.feedback MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.alerts MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.thresholds MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.drift_reference MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.operating_curve MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.api_keys MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.audit MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.shadow_predictions MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
ALTER TABLE {database}.refusals MODIFY SETTING fsync_after_insert = {fsync}, fsync_part_directory = {fsync};
