"""Store worker: writes predictions, feedback and alerts into ClickHouse in batches."""
