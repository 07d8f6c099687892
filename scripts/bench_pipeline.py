"""Throughput and latency of the running pipeline, side by side for several infer batch sizes.

For each batch size it starts `airparadis up` in a subprocess (own folder, own ports, one
shared MLflow registry so the model is trained once), then measures:
- HTTP: /v1/predict requests per second and p50/p99 latency at a given concurrency;
- bus: tweets per second from tweets.submitted to tweets.scored, for tweets an upstream app
  publishes directly.

    python scripts/bench_pipeline.py --data ../shared/data/sentiment140/sample-100k.csv.gz
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd
from faststream.nats import NatsBroker

from shared import subjects
from shared.messages import TweetSubmitted
from shared.nats_server import free_port

ROOT = Path(__file__).resolve().parents[1]


def tweets(data: Path, n: int) -> list[str]:
    frame = pd.read_csv(data, nrows=max(n, 100))
    texts = [t for t in frame["text"].astype(str) if t.strip()]
    return [texts[i % len(texts)][:280] for i in range(n)]


def start(
    folder: Path, registry: str, data: Path, batch: int, sample: int
) -> tuple[subprocess.Popen[bytes], str, str]:
    http_port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(folder),
        "AIRPARADIS_HTTP_PORT": str(http_port),
        "AIRPARADIS_NATS_PORT": str(nats_port),
        "AIRPARADIS_MLFLOW_TRACKING_URI": registry,
        "AIRPARADIS_BATCH_MAX_SIZE": str(batch),
        "AIRPARADIS_TRAIN_SAMPLE": str(sample),
        "AIRPARADIS_LOG_LEVEL": "WARNING",
    }
    log = (folder.parent / f"up-{batch}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "airparadis", "--log-level", "WARNING", "up", "--data", str(data)],
        env=env,
        cwd=folder.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"airparadis up exited; see {log.name}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base, f"nats://127.0.0.1:{nats_port}"
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("airparadis up was not ready in 15 minutes")


async def http_load(base: str, texts: list[str], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in texts:
        queue.put_nowait(t)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            text = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/v1/predict", json={"text": text})
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.post("/v1/predict", json={"text": "warm up"})
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "http_rps": len(latencies) / elapsed,
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
    }


async def bus_load(nats_url: str, texts: list[str]) -> float:
    broker = NatsBroker(nats_url, log_level=10)
    await broker.connect()
    done = asyncio.Event()
    seen: set[str] = set()
    expected = {TweetSubmitted(text=t).id: t for t in texts}

    nc = broker.config.connection_state.connection

    async def on_scored(msg: object) -> None:
        tweet_id = json.loads(msg.data)["id"]  # type: ignore[attr-defined]
        if tweet_id in expected:
            seen.add(tweet_id)
            if len(seen) == len(expected):
                done.set()

    sub = await nc.subscribe(subjects.TWEETS_SCORED, cb=on_scored)
    js = nc.jetstream()
    started = time.perf_counter()
    for start_at in range(0, len(expected), 500):
        chunk = list(expected.items())[start_at : start_at + 500]
        await asyncio.gather(
            *(
                js.publish(
                    subjects.TWEETS_SUBMITTED,
                    TweetSubmitted(id=i, text=t, source="bench").model_dump_json().encode(),
                    headers={"Nats-Msg-Id": i},
                )
                for i, t in chunk
            )
        )
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await broker.stop()
    return len(expected) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("AIRPARADIS_DATA"))
    parser.add_argument("--sample", type=int, default=20_000, help="tweets to train on")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--bus-tweets", type=int, default=5000)
    parser.add_argument("--batch-sizes", default="1,64")
    args = parser.parse_args()
    if args.data is None:
        sys.exit("give --data or set AIRPARADIS_DATA")
    work = Path(tempfile.mkdtemp(prefix="airparadis-bench-"))
    registry = f"sqlite:///{work / 'mlflow.db'}"
    texts = tweets(args.data, max(args.requests, args.bus_tweets))
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        process, base, nats_url = start(
            work / f"batch-{batch}", registry, args.data, batch, args.sample
        )
        try:
            figures = asyncio.run(http_load(base, texts[: args.requests], args.concurrency))
            figures["bus_tweets_per_s"] = asyncio.run(bus_load(nats_url, texts[: args.bus_tweets]))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        rows.append({"batch_max_size": batch, **figures})
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"{'batch':>6} {'HTTP req/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'bus tweets/s':>13}")
    for r in rows:
        print(
            f"{r['batch_max_size']:>6} {r['http_rps']:>11.1f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['bus_tweets_per_s']:>13.1f}"
        )
    base_row = rows[0]
    for r in rows[1:]:
        print(
            f"batch {r['batch_max_size']} vs {base_row['batch_max_size']}: "
            f"bus throughput x{r['bus_tweets_per_s'] / base_row['bus_tweets_per_s']:.2f}, "
            f"HTTP throughput x{r['http_rps'] / base_row['http_rps']:.2f}"
        )


if __name__ == "__main__":
    main()
