"""Storage benchmark: insert scored tweets into a temporary chDB the way the store worker does
(PredictionRepository, one insert per batch), then time the dashboard-style reads.

    python scripts/bench_storage.py --rows 50000 --batch 500
    python scripts/bench_storage.py --rows 20000 --batch 100 --fsync both --repeat 3

With --fsync both it runs the inserts with AIRPARADIS_CLICKHOUSE_FSYNC on and off, alternating,
and prints their rates side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from shared.messages import TweetScored
from shared.preprocessing import text_features
from shared.storage import ChdbStore, PredictionRepository, apply_migrations

PER_MINUTE = """
SELECT toStartOfMinute(scored_at) AS minute,
       count() AS predictions,
       countIf(label = 'positive') AS positives,
       avg(probability) AS mean_probability,
       quantile(0.95)(latency_ms) AS p95_latency_ms
FROM predictions FINAL
WHERE scored_at >= {since:DateTime64(3, 'UTC')}
GROUP BY minute
ORDER BY minute
"""


def scored_tweets(count: int, spread: timedelta) -> list[TweetScored]:
    """`count` predictions spread evenly over the last `spread`."""
    now = datetime.now(UTC)
    step = spread / count
    tweets = []
    for number in range(count):
        text = f"Flight {number} to Paradis was {'great' if number % 3 else 'late'} @AirParadis"
        probability = (number % 100) / 100
        tweets.append(
            TweetScored(
                id=f"bench-{number}",
                text=text,
                features=text_features(text),
                source="bench",
                label="positive" if probability >= 0.5 else "negative",
                probability=probability,
                threshold=0.5,
                model_name="bench",
                model_version="1",
                submitted_at=now - step * number - timedelta(milliseconds=15),
                scored_at=now - step * number,
                latency_ms=15.0 + number % 7,
                batch_size=32,
            )
        )
    return tweets


async def bench(folder: Path, rows: int, batch: int, fsync: bool = True) -> float:
    """Insert and read; returns the insert rate in rows/s."""
    store = ChdbStore(folder, "bench")
    try:
        apply_migrations(store, retention_days=365, fsync=fsync)
        repository = PredictionRepository(store)
        tweets = scored_tweets(rows, spread=timedelta(hours=8))

        started = time.perf_counter()
        for first in range(0, rows, batch):
            await repository.save_predictions(tweets[first : first + batch])
        insert_s = time.perf_counter() - started

        started = time.perf_counter()
        counted = await repository.count("predictions")
        count_s = time.perf_counter() - started

        started = time.perf_counter()
        minutes = store.query(PER_MINUTE, {"since": datetime.now(UTC) - timedelta(hours=24)})
        aggregate_s = time.perf_counter() - started
    finally:
        store.close()

    print(f"chDB folder: {folder} (fsync {'on' if fsync else 'off'})")
    print(
        f"insert: {rows} rows, batches of {batch}: {insert_s:.2f} s, {rows / insert_s:,.0f} rows/s"
    )
    print(f"count with FINAL: {counted} rows in {count_s * 1000:.1f} ms")
    print(
        f"per-minute aggregation with FINAL: {len(minutes)} minutes in {aggregate_s * 1000:.1f} ms"
    )
    return rows / insert_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="predictions to insert")
    parser.add_argument("--batch", type=int, default=500, help="rows per insert")
    parser.add_argument("--fsync", choices=("on", "off", "both"), default="on")
    parser.add_argument(
        "--dir", default=None, help="where the temporary chDB goes (the disk to measure)"
    )
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.fsync]
    rates: dict[bool, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.repeat):
        for fsync in modes:
            with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=args.dir) as folder:
                rates[fsync].append(asyncio.run(bench(Path(folder), args.rows, args.batch, fsync)))
    print()
    for fsync, got in rates.items():
        print(
            f"fsync {'on ' if fsync else 'off'}: {min(got):,.0f}..{max(got):,.0f} rows/s "
            f"({args.batch} rows an insert, {len(got)} run(s))"
        )


if __name__ == "__main__":
    main()
