"""The scoring pipeline against its limits and against what a user would pick instead, side by
side in one run, on the same machine and the same tweets.

- model: the champion alone in this process, in batches of 64 and one tweet at a time;
- raw nats-py: three hops with no work (each hop a process: fetch a batch, publish_async,
  ack), and one hop (publish_async, then fetch + ack);
- peer: a minimal FastAPI app calling the same model in-process (scripts/peer_app.py);
- pipeline: `airparadis up` (one process per worker): bus tweets/s from tweets.submitted to
  stored (the store's consumer acked every one; the rows are then counted), HTTP req/s and
  latency at concurrency 1 and 32, CPU ms per tweet of each process (/proc), and infer's
  batch sizes;
and prints each pipeline figure as a ratio of those. Repeat with --repeat for ranges.

    AIRPARADIS_DATA=../shared/data/sentiment140/sample-100k.csv.gz \\
        .venv/bin/python scripts/bench_pipeline.py --sample 20000 --bus-tweets 20000

With --soak N it only pushes N tweets through `airparadis up` (in chunks of 2,000, as fast as
it takes them) and reports the resident memory of each process at start and at the end.

With --challenger it runs only the pipeline, without and with a challenger scored in shadow (a
second simple version trained on another sample), alternating within each repeat: what shadow
scoring costs the champion's answers (HTTP p50/p99 at 1 and 32, bus tweets/s, CPU per tweet),
and that every bus tweet got its shadow row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import numpy as np

from airparadis.processes import cpu_seconds, descendants, rss_mb
from shared import subjects
from shared.messages import TweetSubmitted
from shared.nats_server import NatsServerProcess, free_port
from shared.registry import Registry
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

RAW_STREAM = "RAW"


# --- Measuring ---


def cpu_of(pids: dict[int, str]) -> dict[int, float]:
    figures = {}
    for pid in pids:
        with suppress(OSError):
            figures[pid] = cpu_seconds(pid)
    return figures


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Figures:
    """One measurement of each kind; several runs are kept side by side for ranges."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def text(self, name: str, fmt: str = "{:.1f}") -> str:
        got = self.values.get(name, [])
        if not got:
            return "-"
        if len(got) == 1:
            return fmt.format(got[0])
        return f"{fmt.format(min(got))}..{fmt.format(max(got))}"

    def ratio(self, top: str, bottom: str) -> str:
        pairs = list(zip(self.values.get(top, []), self.values.get(bottom, []), strict=False))
        ratios = [a / b for a, b in pairs if b]
        if not ratios:
            return "-"
        if len(ratios) == 1:
            return f"{ratios[0]:.2f}"
        return f"{min(ratios):.2f}..{max(ratios):.2f}"


# --- HTTP load: a small keep-alive HTTP/1.1 client, light enough not to be the bottleneck ---


async def http_load(
    port: int, path: str, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float]]:
    """Send every body as a POST at this concurrency; requests/s and latencies in ms."""
    queue = list(reversed(bodies))
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                body = queue.pop()
                request = (
                    f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n\r\n"
                ).encode() + body
                started = time.perf_counter()
                writer.write(request)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if b" 200 " not in status:
                    raise RuntimeError(f"{path} answered {status!r}")
                latencies.append((time.perf_counter() - started) * 1000.0)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - started), latencies


def measure_http(figures: Figures, who: str, port: int, texts: list[str], requests: int) -> None:
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    asyncio.run(http_load(port, "/v1/predict", bodies[:50], 4))  # warm up
    _, idle = asyncio.run(http_load(port, "/v1/predict", bodies[: max(requests // 5, 100)], 1))
    figures.add(f"{who}.idle_p50", quantile(idle, 0.5))
    figures.add(f"{who}.idle_p99", quantile(idle, 0.99))
    rps, busy = asyncio.run(http_load(port, "/v1/predict", bodies[:requests], 32))
    figures.add(f"{who}.rps32", rps)
    figures.add(f"{who}.p50_32", quantile(busy, 0.5))
    figures.add(f"{who}.p99_32", quantile(busy, 0.99))


# --- The limits ---


def measure_model(figures: Figures, settings: Settings, texts: list[str], work: Path) -> None:
    """The champion alone, in a process of its own (a loaded model's thread pools must not
    linger beside the other measurements)."""
    corpus = work / "texts.json"
    corpus.write_text(json.dumps(texts))
    answer = subprocess.run(
        [sys.executable, __file__, "--model-alone", settings.tracking_uri, str(corpus)],
        check=True,
        capture_output=True,
        text=True,
    )
    for name, value in json.loads(answer.stdout.strip().splitlines()[-1]).items():
        figures.add(name, value)


def model_alone(tracking_uri: str, corpus: Path) -> dict[str, float]:
    texts: list[str] = json.loads(corpus.read_text())
    model = Registry(tracking_uri, Settings().model_name).load()
    model.scores(texts[:128])  # warm up
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        model.scores(texts[start : start + 64])
    batched = len(texts) / (time.perf_counter() - started)
    single = texts[: min(len(texts), 2000)]
    started = time.perf_counter()
    for text in single:
        model.scores([text])
    return {
        "model.batch64": batched,
        "model.single": len(single) / (time.perf_counter() - started),
    }


async def raw_hop(url: str, source: str, target: str | None, durable: str, total: int) -> None:
    """One hop as a plain nats-py user writes it: fetch a batch, publish_async each message
    on, await the acks, ack the batch."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(source, durable=durable, stream=RAW_STREAM)
    done = 0
    while done < total:
        try:
            batch = await sub.fetch(256, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        if target is not None:
            futures = [
                await js.publish_async(
                    target,
                    msg.data,
                    headers={"Nats-Msg-Id": f"{target}{msg.metadata.sequence.stream}"},
                )
                for msg in batch
            ]
            await asyncio.gather(*futures)
        for msg in batch:
            await msg.ack()
        done += len(batch)
    await nc.close()


def measure_raw(figures: Figures, folder: Path, payloads: list[bytes]) -> None:
    """The raw chain (three hops, each its own process) and one hop, no work."""
    total = len(payloads)
    # The same durability as the pipeline's `up` (always): the limit for the same guarantee.
    with NatsServerProcess(folder / "raw-nats", sync_interval="always") as server:

        async def setup() -> None:
            nc = await nats.connect(server.url)
            await nc.jetstream().add_stream(name=RAW_STREAM, subjects=["raw.>"])
            await nc.close()

        async def publish(subject: str) -> float:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            started = time.perf_counter()
            for start in range(0, total, 1000):
                futures = [
                    await js.publish_async(
                        subject, p, headers={"Nats-Msg-Id": f"{subject}{start + i}"}
                    )
                    for i, p in enumerate(payloads[start : start + 1000])
                ]
                await asyncio.gather(*futures)
            await nc.close()
            return started

        asyncio.run(setup())
        hops = [
            ("raw.submitted", "raw.preprocessed", "hop1"),
            ("raw.preprocessed", "raw.scored", "hop2"),
            ("raw.scored", None, "hop3"),
        ]
        hop = [sys.executable, __file__, "--raw-hop", server.url]
        processes = [
            subprocess.Popen([*hop, src, dst or "", name, str(total)]) for src, dst, name in hops
        ]
        time.sleep(2.0)  # the hops bind their consumers
        started = asyncio.run(publish("raw.submitted"))
        processes[-1].wait()
        figures.add("raw.three_hops", total / (time.perf_counter() - started))
        for process in processes:
            process.wait()

        one = subprocess.Popen(
            [sys.executable, __file__, "--raw-hop", server.url, "raw.one", "", "one", str(total)]
        )
        time.sleep(2.0)
        started = asyncio.run(publish("raw.one"))
        one.wait()
        figures.add("raw.one_hop", total / (time.perf_counter() - started))


# --- The peer: FastAPI calling the model in-process ---


@contextmanager
def peer(settings: Settings, log: Path) -> Iterator[int]:
    port = free_port()
    env = os.environ | {"AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "peer_app.py"), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url} never came up; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"{url} not ready in {timeout:g} s; see {log}")


# --- The pipeline ---


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    http_port: int
    nats_url: str


@contextmanager
def pipeline(
    settings: Settings, folder: Path, batch: int, log: Path, durability: str = "always"
) -> Iterator[Running]:
    http_port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(folder),
        "AIRPARADIS_HTTP_PORT": str(http_port),
        "AIRPARADIS_NATS_PORT": str(nats_port),
        "AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRPARADIS_BATCH_MAX_SIZE": str(batch),
        "AIRPARADIS_CHECK_INTERVAL_S": "0",
        "AIRPARADIS_DURABILITY": durability,
        # The load comes from one address: measure the pipeline, not the rate limit.
        "AIRPARADIS_RATE_LIMIT_PER_S": "0",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airparadis", "--log-level", "WARNING", "up"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{http_port}/readyz", process, log)
        yield Running(process, http_port, f"nats://127.0.0.1:{nats_port}")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


async def scored_so_far(js: Any) -> int:
    info = await js.stream_info(subjects.STREAM_TWEETS, subjects_filter=subjects.TWEETS_SCORED)
    return int((info.state.subjects or {}).get(subjects.TWEETS_SCORED, 0))


async def publish_all(
    js: Any, tweets: list[TweetSubmitted], after_each_chunk: Callable[[], None] | None = None
) -> None:
    """Publish the tweets on tweets.submitted, 1,000 acknowledgements in flight at a time."""
    for start in range(0, len(tweets), 1000):
        futures = [
            await js.publish_async(
                subjects.TWEETS_SUBMITTED,
                t.model_dump_json().encode(),
                headers={"Nats-Msg-Id": t.id},
            )
            for t in tweets[start : start + 1000]
        ]
        await asyncio.gather(*futures)
        if after_each_chunk is not None:
            after_each_chunk()


async def bus_load(url: str, tweets: list[TweetSubmitted]) -> float:
    """Publish every tweet on tweets.submitted; seconds until each is scored and the store
    has acknowledged every scored tweet (inserted)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    target = await scored_so_far(js) + len(tweets)
    started = time.perf_counter()
    await publish_all(js, tweets)
    while True:  # polled: the stream's counters are the truth of what was scored and stored
        if await scored_so_far(js) >= target:
            store = await js.consumer_info(
                subjects.STREAM_TWEETS, subjects.DURABLE_STORE_PREDICTIONS
            )
            if store.num_pending == 0 and store.num_ack_pending == 0:
                break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def store_query(url: str, sql: str) -> list[dict[str, Any]]:
    """Rows from the store worker's read endpoint (the bench cannot open its chDB folder)."""
    from shared.store_reads import BusStore

    nc = await nats.connect(url)
    try:
        store = BusStore(nc, asyncio.get_running_loop(), timeout_s=30)
        return await asyncio.to_thread(store.query, sql)
    finally:
        await nc.close()


def measure_pipeline(
    figures: Figures,
    running: Running,
    texts: list[str],
    bus_tweets: int,
    requests: int,
    run: int,
    who: str = "pipeline",
) -> dict[str, float]:
    measure_http(figures, who, running.http_port, texts, requests)
    source = f"bench-{run}"
    tweets = [TweetSubmitted(text=texts[i % len(texts)], source=source) for i in range(bus_tweets)]
    pids = descendants(running.process.pid) | {running.process.pid: "supervisor"}
    cpu_before = cpu_of(pids)
    elapsed = asyncio.run(bus_load(running.nats_url, tweets))
    cpu_after = cpu_of(pids)
    figures.add(f"{who}.bus", bus_tweets / elapsed)
    per_role: dict[str, float] = {}
    for pid, role in pids.items():
        if pid in cpu_before and pid in cpu_after:
            per_role[role] = per_role.get(role, 0.0) + cpu_after[pid] - cpu_before[pid]
    platform_cpu = sum(v for k, v in per_role.items() if k != "nats-server")
    figures.add(f"{who}.cpu_ms_per_tweet", platform_cpu * 1000 / bus_tweets)
    nats_cpu = per_role.get("nats-server", 0.0) * 1000 / bus_tweets
    figures.add("nats.cpu_ms_per_tweet" if who == "pipeline" else f"{who}.nats_cpu", nats_cpu)
    for role, seconds in per_role.items():
        figures.add(f"cpu.{role}", seconds * 1000 / bus_tweets)
    [count] = asyncio.run(
        store_query(
            running.nats_url,
            f"SELECT count() AS n, uniqExact(id) AS ids FROM predictions WHERE source = '{source}'",
        )
    )
    if count["n"] != bus_tweets or count["ids"] != bus_tweets:
        sys.exit(f"stored {count} for {bus_tweets} tweets sent: something was lost or doubled")
    sizes = asyncio.run(
        store_query(
            running.nats_url,
            "SELECT batch_size, count() AS n FROM predictions "
            f"WHERE source = '{source}' GROUP BY batch_size ORDER BY batch_size",
        )
    )
    return {str(row["batch_size"]): row["n"] for row in sizes}


# --- Durability settings side by side ---


def durability_compare(
    settings: Settings, work: Path, texts: list[str], args: argparse.Namespace, uptime: str
) -> None:
    """The pipeline under each AIRPARADIS_DURABILITY value, alternating within each repeat so
    that the machine's noise falls on all of them alike."""
    choices = [value.strip() for value in args.durability.split(",") if value.strip()]
    figures = Figures()
    for run in range(args.repeat):
        for durability in choices:
            print(f"run {run + 1}/{args.repeat}: pipeline, durability {durability}", flush=True)
            folder, log = work / f"up-{durability}-{run}", work / f"up-{durability}-{run}.log"
            with pipeline(settings, folder, args.batch_size, log, durability) as up:
                measure_pipeline(
                    figures, up, texts, args.bus_tweets, args.requests, run, f"d[{durability}]"
                )
    print(f"\nload average at start: {uptime}; {args.repeat} run(s) of each, min..max")
    print(f"{args.bus_tweets:,} tweets on the bus, {args.requests:,} HTTP requests at 32\n")
    base = f"d[{choices[-1]}]"
    print(
        "| durability | bus tweets/s | vs " + choices[-1] + " | HTTP req/s @32 | p99 @32 ms "
        "| p50 @1 ms | nats-server CPU ms/tweet |"
    )
    print("|---|---|---|---|---|---|---|")
    for durability in choices:
        who = f"d[{durability}]"
        print(
            f"| {durability} | {figures.text(who + '.bus', '{:,.0f}')} "
            f"| {figures.ratio(who + '.bus', base + '.bus')} "
            f"| {figures.text(who + '.rps32', '{:,.0f}')} "
            f"| {figures.text(who + '.p99_32')} | {figures.text(who + '.idle_p50')} "
            f"| {figures.text(who + '.nats_cpu', '{:.3f}')} |"
        )


# --- Shadow scoring: the champion's figures without and with a challenger ---


def prepare_challenger(settings: Settings, data: Path, sample: int) -> str:
    """A second simple version, trained on another sample, made the challenger."""
    from shared.registry import CHALLENGER

    env = os.environ | {
        "AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRPARADIS_HOME": str(settings.home),
    }
    command = [sys.executable, "-m", "airparadis", "--log-level", "WARNING", "train", "simple"]
    # Naive Bayes on bags of words: another model than the champion's, the same serving path.
    command += ["--data", str(data), "--sample", str(sample), "--candidates", "nb"]
    subprocess.run([*command, "--vectorizers", "bow"], env=env, check=True)
    registry = Registry.of(settings)
    newest = max(int(v.version) for v in registry.versions())
    registry.promote(str(newest), CHALLENGER)
    return str(newest)


def shadow_compare(
    settings: Settings, work: Path, texts: list[str], args: argparse.Namespace, uptime: str
) -> None:
    from shared.registry import CHALLENGER

    registry = Registry.of(settings)
    challenger = prepare_challenger(settings, args.data, args.sample)
    figures = Figures()
    for run in range(args.repeat):
        for mode in ("alone", "shadow"):
            if mode == "alone":
                registry.unset_alias(CHALLENGER)
            else:
                registry.promote(challenger, CHALLENGER)
            print(f"run {run + 1}/{args.repeat}: pipeline, {mode}", flush=True)
            folder, log = work / f"up-{mode}-{run}", work / f"up-{mode}-{run}.log"
            with pipeline(settings, folder, args.batch_size, log) as up:
                if mode == "shadow":
                    wait_for_challenger(up, challenger)
                measure_pipeline(
                    figures, up, texts, args.bus_tweets, args.requests, run, f"s[{mode}]"
                )
                if mode == "shadow":
                    shadowed = count_shadow(up, f"bench-{run}", args.bus_tweets)
                    figures.add("s[shadow].rows_per_tweet", shadowed / args.bus_tweets)
    print(f"\nload average at start: {uptime}; {args.repeat} run(s) of each, min..max")
    print(f"{args.bus_tweets:,} tweets on the bus, {args.requests:,} HTTP requests at 32\n")
    print(
        "| champion | bus tweets/s | HTTP req/s @32 | p50 @32 ms | p99 @32 ms | p50 @1 ms "
        "| p99 @1 ms | platform CPU ms/tweet |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("alone", "shadow"):
        who = f"s[{mode}]"
        print(
            f"| {'with a challenger in shadow' if mode == 'shadow' else 'alone'} "
            f"| {figures.text(who + '.bus', '{:,.0f}')} "
            f"| {figures.text(who + '.rps32', '{:,.0f}')} "
            f"| {figures.text(who + '.p50_32')} | {figures.text(who + '.p99_32')} "
            f"| {figures.text(who + '.idle_p50')} | {figures.text(who + '.idle_p99')} "
            f"| {figures.text(who + '.cpu_ms_per_tweet', '{:.3f}')} |"
        )
    print()
    for label, key in (
        ("bus tweets/s", "bus"),
        ("p50 @32", "p50_32"),
        ("p99 @32", "p99_32"),
        ("p50 @1", "idle_p50"),
        ("p99 @1", "idle_p99"),
    ):
        print(
            f"  shadow / alone, {label:<14} {figures.ratio(f's[shadow].{key}', f's[alone].{key}')}"
        )
    print(f"  shadow rows per bus tweet     {figures.text('s[shadow].rows_per_tweet')}")


def wait_for_challenger(running: Running, version: str, within_s: float = 120.0) -> None:
    """Until a tweet gets its shadow row: the infer worker loaded the challenger."""
    deadline = time.monotonic() + within_s
    probe = 0
    while time.monotonic() < deadline:
        httpx.post(
            f"http://127.0.0.1:{running.http_port}/v1/predict",
            json={"text": f"warming the challenger up {probe}"},
            timeout=30,
        )
        probe += 1
        [found] = asyncio.run(
            store_query(
                running.nats_url,
                f"SELECT count() AS n FROM shadow_predictions WHERE model_version = '{version}'",
            )
        )
        if found["n"]:
            return
        time.sleep(1.0)
    sys.exit(f"no shadow row from version {version} within {within_s:g} s")


def count_shadow(running: Running, source: str, expected: int, within_s: float = 60.0) -> int:
    """The shadow rows of the bus tweets of `source` (waited for: the store inserts them in
    batches, after the champion's)."""
    deadline = time.monotonic() + within_s
    while True:
        [found] = asyncio.run(
            store_query(
                running.nats_url,
                "SELECT count() AS n, uniqExact(prediction_id) AS ids FROM shadow_predictions "
                f"WHERE prediction_id IN (SELECT id FROM predictions WHERE source = '{source}')",
            )
        )
        if found["n"] >= expected or time.monotonic() > deadline:
            if found["n"] != found["ids"]:
                sys.exit(f"shadow rows doubled: {found}")
            return int(found["n"])
        time.sleep(0.5)


# --- Soak ---


def memory_by_role(pids: dict[int, str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for pid, role in pids.items():
        with suppress(OSError):
            found[role] = found.get(role, 0.0) + rss_mb(pid)
    return found


def soak(settings: Settings, work: Path, texts: list[str], total: int) -> None:
    source = "soak"
    tweets = [TweetSubmitted(text=texts[i % len(texts)], source=source) for i in range(total)]
    with pipeline(settings, work / "soak", 64, work / "soak.log") as running:
        pids = descendants(running.process.pid) | {running.process.pid: "supervisor"}
        # Warm every process up (a first model call, first inserts) before the baseline.
        asyncio.run(bus_load(running.nats_url, tweets[:2000]))
        before = memory_by_role(pids)
        started = time.perf_counter()
        for start in range(2000, total, 20_000):
            asyncio.run(bus_load(running.nats_url, tweets[start : start + 20_000]))
            print(f"  {min(start + 20_000, total):,}/{total:,} tweets stored", flush=True)
        elapsed = time.perf_counter() - started
        after = memory_by_role(pids)
        [count] = asyncio.run(
            store_query(
                running.nats_url,
                "SELECT count() AS n, uniqExact(id) AS ids FROM predictions "
                f"WHERE source = '{source}'",
            )
        )
    print()
    print(f"soak: {total:,} tweets in {elapsed:.0f} s ({(total - 2000) / elapsed:.0f} tweets/s)")
    print(f"stored: {count['n']:,} rows, {count['ids']:,} distinct ids")
    print(f"{'process':<12} {'RSS MB after 2,000':>18} {'RSS MB at the end':>18} {'growth':>8}")
    for role in sorted(before):
        grew = after.get(role, float("nan")) - before[role]
        print(
            f"{role:<12} {before[role]:>18.1f} {after.get(role, float('nan')):>18.1f} {grew:>+8.1f}"
        )


# --- The run ---


def tweets_from(data: Path, n: int) -> list[str]:
    from training.data import load_sentiment140

    frame = load_sentiment140(data).sample(frac=1.0, random_state=7).head(max(n, 100))
    texts = [t for t in frame["text"].astype(str) if t.strip()]
    return [texts[i % len(texts)][:280] for i in range(n)]


def bench_champion(prefix: str, data: Path, family: str, sample: int) -> tuple[Path, Settings]:
    """A fresh work folder (`prefix` in the temporary folder) whose MLflow registry holds a
    `family` champion trained on `sample` tweets of `data`; the settings that read it."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    settings = Settings(
        home=work / "registry", mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}"
    )
    print(f"preparing a {family} champion in {work}", flush=True)
    prepare_registry(settings, data, family, sample)
    return work, settings


def prepare_registry(settings: Settings, data: Path, family: str, sample: int) -> None:
    """A champion in a registry of our own: the baseline, or a transformer (smoke-trained:
    the same encoder and serving path as a full-size one, at the full 128 tokens)."""
    from airparadis.bootstrap import ensure_champion

    if family == "simple":
        ensure_champion(settings.model_copy(update={"train_sample": sample}), data)
        return
    env = os.environ | {
        "AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRPARADIS_HOME": str(settings.home),
        "HF_HUB_OFFLINE": "1",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "airparadis",
            "train",
            "transformer",
            "--data",
            str(data),
            "--smoke",
            "--max-length",
            "128",
            "--promote",
        ],
        env=env,
        check=True,
    )


def report(figures: Figures, batches: list[dict[str, float]], uptime: str) -> None:
    f = figures.text
    print()
    print(f"load average at start: {uptime}")
    print("figures (range over runs):")
    rows = [
        ("model alone, batches of 64 (tweets/s)", "model.batch64"),
        ("model alone, one at a time (tweets/s)", "model.single"),
        ("raw nats-py, three hops (msgs/s)", "raw.three_hops"),
        ("raw nats-py, one hop (msgs/s)", "raw.one_hop"),
        ("peer FastAPI, req/s at 32", "peer.rps32"),
        ("peer FastAPI, p50 / p99 ms at 32", ("peer.p50_32", "peer.p99_32")),
        ("peer FastAPI, idle p50 / p99 ms", ("peer.idle_p50", "peer.idle_p99")),
        ("pipeline, bus tweets/s (submitted -> stored)", "pipeline.bus"),
        ("pipeline, HTTP req/s at 32", "pipeline.rps32"),
        ("pipeline, p50 / p99 ms at 32", ("pipeline.p50_32", "pipeline.p99_32")),
        ("pipeline, idle p50 / p99 ms", ("pipeline.idle_p50", "pipeline.idle_p99")),
        ("pipeline, CPU ms per tweet, all its processes", "pipeline.cpu_ms_per_tweet"),
        ("nats-server, CPU ms per tweet", "nats.cpu_ms_per_tweet"),
    ]
    for label, key in rows:
        value = (
            " / ".join(f(k, "{:.2f}") for k in key) if isinstance(key, tuple) else f(key, "{:.2f}")
        )
        print(f"  {label:<50} {value}")
    roles = sorted({k.split(".", 1)[1] for k in figures.values if k.startswith("cpu.")})
    by_role = ", ".join(f"{role} {f('cpu.' + role, '{:.3f}')}" for role in roles)
    print(f"  CPU ms per tweet by process: {by_role}")
    print("  infer batch sizes (tweets per size, last run): " + json.dumps(batches[-1]))
    print()
    print("ratios:")
    for label, top, bottom, target in (
        ("bus / raw three hops", "pipeline.bus", "raw.three_hops", "(target >= 0.5)"),
        ("bus / model alone in batches", "pipeline.bus", "model.batch64", ""),
        ("HTTP req/s at 32 / peer", "pipeline.rps32", "peer.rps32", "(target >= 1.5)"),
        ("p99 at 32 / peer's", "pipeline.p99_32", "peer.p99_32", "(target <= 1)"),
    ):
        print(f"  {label:<36} {figures.ratio(top, bottom):<12} {target}")
    gaps = [
        a - b
        for a, b in zip(
            figures.values.get("pipeline.idle_p50", []),
            figures.values.get("peer.idle_p50", []),
            strict=False,
        )
    ]
    gap = f"{min(gaps):+.2f}..{max(gaps):+.2f}" if gaps else "-"
    print(f"  {'idle p50 - peer idle p50 (ms)':<36} {gap:<12} (target <= +3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("AIRPARADIS_DATA"))
    parser.add_argument("--family", choices=("simple", "transformer"), default="simple")
    parser.add_argument("--sample", type=int, default=20_000, help="tweets the model learns")
    parser.add_argument("--bus-tweets", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000, help="HTTP requests at 32")
    parser.add_argument("--batch-size", type=int, default=64, help="AIRPARADIS_BATCH_MAX_SIZE")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--soak", type=int, metavar="N", help="only the memory soak, N tweets")
    parser.add_argument(
        "--durability",
        metavar="LIST",
        help="only the pipeline, once per AIRPARADIS_DURABILITY value (e.g. always,1s,2m), "
        "side by side",
    )
    parser.add_argument(
        "--challenger",
        action="store_true",
        help="only the pipeline, without and with a challenger scored in shadow, side by side",
    )
    parser.add_argument("--raw-hop", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--model-alone", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model_alone:
        print(json.dumps(model_alone(args.model_alone[0], Path(args.model_alone[1]))))
        return
    if args.raw_hop:
        url, source, target, durable, total = args.raw_hop
        asyncio.run(raw_hop(url, source, target or None, durable, int(total)))
        return
    if args.data is None:
        sys.exit("give --data or set AIRPARADIS_DATA")
    uptime = Path("/proc/loadavg").read_text().strip()
    work, settings = bench_champion("airparadis-bench-", args.data, args.family, args.sample)
    texts = tweets_from(args.data, max(args.requests, 5000))
    if args.soak:
        soak(settings, work, texts, args.soak)
        return
    if args.durability:
        durability_compare(settings, work, texts, args, uptime)
        return
    if args.challenger:
        shadow_compare(settings, work, texts, args, uptime)
        return
    payloads = [TweetSubmitted(text=t, source="raw").model_dump_json().encode() for t in texts]
    # At least 20,000 on the raw chain: its last partial batches wait out nats-py's fetch
    # timeout (0.5 s a hop), which a short run would count as slowness.
    raw_payloads = [payloads[i % len(payloads)] for i in range(max(args.bus_tweets, 20_000))]
    figures = Figures()
    batches = []
    for run in range(args.repeat):
        print(f"run {run + 1}/{args.repeat}: model alone", flush=True)
        measure_model(figures, settings, texts, work)
        print(f"run {run + 1}/{args.repeat}: raw nats-py", flush=True)
        measure_raw(figures, work / f"raw-{run}", raw_payloads)
        print(f"run {run + 1}/{args.repeat}: peer", flush=True)
        with peer(settings, work / f"peer-{run}.log") as port:
            measure_http(figures, "peer", port, texts, args.requests)
        print(f"run {run + 1}/{args.repeat}: pipeline", flush=True)
        with pipeline(settings, work / f"up-{run}", args.batch_size, work / f"up-{run}.log") as up:
            batches.append(
                measure_pipeline(figures, up, texts, args.bus_tweets, args.requests, run)
            )
        print(json.dumps({k: v[-1] for k, v in figures.values.items()}), flush=True)
    report(figures, batches, uptime)


if __name__ == "__main__":
    main()
