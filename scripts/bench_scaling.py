"""Scaling on backlog, measured: a burst of tweets on an idle `airparadis up`, three ways side
by side on the same machine, the same champion and the same tweets:

- scaling on: infer between 1 and --max-infer processes, preprocess between 1 and 2;
- fixed at the minimum: one process each;
- fixed at the maximum: --max-infer infer processes, 2 preprocess.

For each: the worker processes every second (read from /proc), the seconds from the first
publish until every tweet is scored and stored (the scored-subject counter of the stream and
the store's consumer with nothing pending), then the rows and distinct ids in ClickHouse (read
through the store worker): nothing lost, nothing doubled. With scaling on, the cold start of
each process added (from the supervisor's "process started" to the child's "process running");
then --cold-starts times the cold start of one infer process on the idle machine (spawned to
"process running": what a minimum of 0 makes the first tweet wait). --tweets 0 measures only
those; --family transformer does it all with a smoke-trained transformer (same serving path).

With --replicas 1,2,4 it measures instead how infer scales with its processes: for each count,
infer fixed at that many processes (scaling off, preprocess fixed at 1), the same burst after a
warm-up; tweets/s from the first publish until every tweet is scored and stored, CPU ms per
tweet of the infer processes and of the whole platform (user + system from /proc over the burst;
nats-server apart), the cores the platform used and those the rest of the machine took meanwhile
(/proc/stat: others' load on a shared machine), rows and distinct ids stored, and each figure
as a ratio of the first count's. The counts alternate within each --repeat (in reverse order
every other repeat), so the machine's noise falls on all of them alike. --py-spy S then records
one infer process for S seconds under a burst (py-spy, Python stacks) and says where its time
went.

    AIRPARADIS_DATA=../shared/data/sentiment140/sample-100k.csv.gz \\
        .venv/bin/python scripts/bench_scaling.py --tweets 20000
    AIRPARADIS_DATA=../shared/data/sentiment140/sample-100k.csv.gz \\
        .venv/bin/python scripts/bench_scaling.py --family transformer --replicas 1,2,4 \\
        --tweets 3000 --repeat 3 --py-spy 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make `scripts.bench_pipeline` importable
    sys.path.insert(0, str(ROOT))

from airparadis.bus_init import init_bus  # noqa: E402
from airparadis.processes import descendants  # noqa: E402
from scripts.bench_pipeline import (  # noqa: E402
    Figures,
    bench_champion,
    bus_load,
    cpu_of,
    publish_all,
    scored_so_far,
    store_query,
    tweets_from,
    wait_http,
)
from shared import subjects  # noqa: E402
from shared.messages import TweetSubmitted  # noqa: E402
from shared.nats_server import free_port  # noqa: E402
from shared.settings import Settings  # noqa: E402

WORKERS = ("preprocess", "infer")


@dataclass
class Outcome:
    name: str
    drain_s: float = 0.0
    rows: int = 0
    ids: int = 0
    timeline: list[dict[str, int]] = field(default_factory=list)  # processes, each second
    cold_starts_s: list[float] = field(default_factory=list)
    decisions: int = 0


@contextmanager
def platform(settings: Settings, folder: Path, env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """`airparadis up` with these settings, ready; the pid of the supervisor and its NATS URL."""
    http_port, nats_port = free_port(), free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(folder),
        "AIRPARADIS_HTTP_PORT": str(http_port),
        "AIRPARADIS_NATS_PORT": str(nats_port),
        "AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRPARADIS_CHECK_INTERVAL_S": "0",
        "AIRPARADIS_LOG_FORMAT": "json",
    }
    log = folder.with_suffix(".log")
    folder.mkdir(parents=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airparadis", "up"],
            env=environment | env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{http_port}/readyz", process, log)
        yield process.pid, f"nats://127.0.0.1:{nats_port}"
    finally:
        started = descendants(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        for pid in started:  # anything left behind, by pid
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def processes_of(root: int) -> dict[str, int]:
    roles = list(descendants(root).values())
    return {worker: roles.count(worker) for worker in WORKERS}


async def burst(url: str, tweets: list[TweetSubmitted], root: int, outcome: Outcome) -> None:
    """Publish the burst; sample the processes every second until all is scored and stored."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    target = await scored_so_far(js) + len(tweets)
    started = time.perf_counter()
    next_sample = started

    def sample() -> None:
        nonlocal next_sample
        if time.perf_counter() >= next_sample:
            outcome.timeline.append(processes_of(root))
            next_sample += 1.0

    await publish_all(js, tweets, sample)
    while True:
        sample()
        if await scored_so_far(js) >= target:
            store = await js.consumer_info(
                subjects.STREAM_TWEETS, subjects.DURABLE_STORE_PREDICTIONS
            )
            if store.num_pending == 0 and store.num_ack_pending == 0:
                break
        await asyncio.sleep(0.05)
    outcome.drain_s = time.perf_counter() - started
    await nc.close()


def cold_starts(log: Path) -> list[float]:
    """Seconds from the supervisor starting a process added by scaling to that process running."""
    started: dict[str, datetime] = {}
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        at = datetime.fromisoformat(entry["time"])
        if entry.get("message") == "process started" and "-" in str(entry.get("child")):
            started[entry["child"]] = at
        elif entry.get("message") == "process running" and entry.get("process") in started:
            found.append((at - started.pop(entry["process"])).total_seconds())
    return found


def run_one(
    settings: Settings, work: Path, name: str, env: dict[str, str], texts: list[str]
) -> Outcome:
    outcome = Outcome(name)
    tweets = [TweetSubmitted(text=t, source=name) for t in texts]
    folder = work / name
    with platform(settings, folder, env) as (root, url):
        print(f"{name}: ready, {processes_of(root)}; burst of {len(tweets)}", flush=True)
        asyncio.run(burst(url, tweets, root, outcome))
        [row] = asyncio.run(
            store_query(
                url,
                "SELECT count() AS rows, uniqExact(id) AS ids FROM predictions"
                f" WHERE source = '{name}'",
            )
        )
        outcome.rows, outcome.ids = int(row["rows"]), int(row["ids"])
        status = folder / "scaling.json"
        if status.exists():
            outcome.decisions = len(json.loads(status.read_text())["decisions"])
    if name == "scaling":  # the processes it added (fixed-max starts its own at start)
        outcome.cold_starts_s = cold_starts(folder.with_suffix(".log"))
    print(f"{name}: drained in {outcome.drain_s:.1f} s", flush=True)
    return outcome


def idle_cold_starts(settings: Settings, work: Path, times: int) -> list[float]:
    """Seconds from spawning `airparadis worker infer` to its "process running" (model loaded,
    consumer bound), on an idle machine with nats-server up: what a minimum of 0 would make the
    first tweet wait."""
    from shared.nats_server import NatsServerProcess

    server = NatsServerProcess(work / "cold-nats")
    url = server.start()
    asyncio.run(init_bus(Settings(nats_url=url)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(work / "cold"),
        "AIRPARADIS_NATS_URL": url,
        "AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRPARADIS_LOG_FORMAT": "json",
    }
    found = []
    try:
        for _ in range(times):
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-m", "airparadis", "worker", "infer"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert child.stdout is not None
            for line in child.stdout:
                if b'"process running"' in line:
                    found.append(time.perf_counter() - started)
                    break
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
    finally:
        server.stop()
    return found


def runs_of(timeline: list[dict[str, int]], worker: str) -> str:
    """1,1,2,2,2,3 -> '1 (2 s), 2 (3 s), 3 (1 s)': processes, and for how long."""
    parts: list[list[int]] = []
    for sample in timeline:
        count = sample[worker]
        if parts and parts[-1][0] == count:
            parts[-1][1] += 1
        else:
            parts.append([count, 1])
    return ", ".join(f"{count} ({seconds} s)" for count, seconds in parts)


def report(outcomes: list[Outcome], total: int, uptime: str, args: Any) -> None:
    print()
    print(f"burst of {total} tweets, {args.family} model, batch {args.batch_size}; load before")
    print(f"the runs: {uptime}; {os.cpu_count()} cores")
    print()
    print(
        "| configuration | drain (s) | tweets/s | rows | distinct ids | infer processes over "
        "time | preprocess | decisions |"
    )
    print("|---|---:|---:|---:|---:|---|---|---:|")
    for o in outcomes:
        print(
            f"| {o.name} | {o.drain_s:.1f} | {total / o.drain_s:,.0f} | {o.rows} | {o.ids} | "
            f"{runs_of(o.timeline, 'infer')} | {runs_of(o.timeline, 'preprocess')} | "
            f"{o.decisions} |"
        )
    starts = [s for o in outcomes for s in o.cold_starts_s]
    if starts:
        print()
        print(f"cold start of the processes added: {', '.join(f'{s:.1f}' for s in starts)} s")
    lost = [o.name for o in outcomes if (o.rows, o.ids) != (total, total)]
    print()
    print("nothing lost or doubled" if not lost else f"LOST OR DOUBLED in {lost}")
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


# --- Infer processes side by side (--replicas) ---


def parse_counts(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: the infer process counts to compare, each at least 1, each once."""
    counts = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            count = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a number of processes: {part.strip()!r}"
            ) from None
        if count < 1:
            raise argparse.ArgumentTypeError(f"at least one infer process, not {count}")
        if count in counts:
            raise argparse.ArgumentTypeError(f"{count} given twice")
        counts.append(count)
    if not counts:
        raise argparse.ArgumentTypeError("no process count given")
    return counts


def order_of(counts: list[int], run: int) -> list[int]:
    """The counts in order on even runs, reversed on odd ones: none always goes first."""
    return counts if run % 2 == 0 else counts[::-1]


def wait_running(log: Path, worker: str, count: int, within_s: float = 180.0) -> None:
    """Until `count` processes of `worker` logged "process running" (model loaded, consumer
    bound): /readyz answers once the first one is up."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        running = 0
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"process running"' in line:
                entry = json.loads(line)
                running += entry.get("message") == "process running" and entry.get("workers") == [
                    worker
                ]
        if running >= count:
            return
        time.sleep(0.5)
    sys.exit(f"{count} {worker} processes not running within {within_s:g} s; see {log}")


def machine_cpu_s() -> float:
    """CPU seconds every core of the machine spent busy so far (user, nice, system, irq)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def measure_replicas(
    settings: Settings,
    work: Path,
    count: int,
    run: int,
    env: dict[str, str],
    texts: list[str],
    warmup: int,
    figures: Figures,
) -> None:
    """One burst through `up` with infer fixed at `count` processes."""
    name = f"infer{count}-run{run}"
    fixed = {
        "AIRPARADIS_INFER_REPLICAS": str(count),
        "AIRPARADIS_SCALE_PREPROCESS_MIN": "1",
        "AIRPARADIS_SCALE_PREPROCESS_MAX": "1",
    }
    folder = work / name
    with platform(settings, folder, env | fixed) as (root, url):
        wait_running(folder.with_suffix(".log"), "infer", count)
        # Every process's first ONNX calls and first inserts before the measured burst.
        warm = [TweetSubmitted(text=t, source=f"{name}-warm") for t in texts[:warmup]]
        asyncio.run(bus_load(url, warm))
        tweets = [TweetSubmitted(text=t, source=name) for t in texts]
        pids = descendants(root) | {root: "supervisor"}
        load = Path("/proc/loadavg").read_text().split()[0]
        before, machine, bench = cpu_of(pids), machine_cpu_s(), time.process_time()
        elapsed = asyncio.run(bus_load(url, tweets))
        after, machine, bench = (
            cpu_of(pids),
            machine_cpu_s() - machine,
            time.process_time() - bench,
        )
        if set(after) != set(before) or sorted(pids.values()).count("infer") != count:
            sys.exit(f"{name}: processes changed during the burst: {pids} then {after}")
        [row] = asyncio.run(
            store_query(
                url,
                "SELECT count() AS rows, uniqExact(id) AS ids FROM predictions"
                f" WHERE source = '{name}'",
            )
        )
    cpu: dict[str, float] = {}
    for pid, role in pids.items():
        cpu[role] = cpu.get(role, 0.0) + after[pid] - before[pid]
    total = len(tweets)
    key = f"r{count}"
    figures.add(f"{key}.tweets_s", total / elapsed)
    figures.add(f"{key}.infer_cpu", cpu["infer"] * 1000 / total)
    platform_cpu = sum(seconds for role, seconds in cpu.items() if role != "nats-server")
    figures.add(f"{key}.platform_cpu", platform_cpu * 1000 / total)
    figures.add(f"{key}.nats_cpu", cpu.get("nats-server", 0.0) * 1000 / total)
    ours = platform_cpu + cpu.get("nats-server", 0.0)
    figures.add(f"{key}.busy_cores", ours / elapsed)
    # What the rest of the machine took meanwhile (the bench's publisher apart): others' load.
    others = max(0.0, machine - ours - bench) / elapsed
    figures.add(f"{key}.others_cores", others)
    figures.add(f"{key}.load", float(load))
    figures.add(f"{key}.rows", float(row["rows"]))
    figures.add(f"{key}.ids", float(row["ids"]))
    print(
        f"{name}: load {load}; {total} tweets in {elapsed:.1f} s ({total / elapsed:,.0f}/s), "
        f"{ours / elapsed:.2f} cores ours, {others:.2f} others'; "
        f"infer {cpu['infer'] * 1000 / total:.2f} ms CPU a tweet, platform "
        f"{platform_cpu * 1000 / total:.2f}; {row['rows']} rows, {row['ids']} ids",
        flush=True,
    )


# py-spy's raw (folded) stacks: "frame;frame;... count", each frame "function (file:line)".
# A stack goes to the category of its innermost frame that matches one (categories in order).
PROFILE_CATEGORIES = (
    ("model call (ONNX Runtime session.run)", ("onnxruntime",)),
    ("tokenizer (token ids)", ("token_ids", "encode_batch")),
    ("padding, batching around the model", ("onnx_transformer.py", "shared/models.py")),
    ("the model's own preprocessing of the text", ("preprocessing.py", "wordsegment", "emoji/")),
    ("message decode/encode (pydantic, JSON)", ("pydantic", "model_validate", "model_dump")),
    ("infer handler", ("services/infer/",)),
    ("bus (nats-py, stages, event loop, sockets)", ("nats/", "shared/", "asyncio", "selectors")),
)


def profile_shares(lines: Iterable[str]) -> dict[str, float]:
    """Share of the samples of each category (plus "other") in py-spy raw output."""
    counts: dict[str, int] = {}
    for line in lines:
        stack, _, number = line.strip().rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")[::-1]
        category = "other"
        for frame in frames:
            found = [name for name, marks in PROFILE_CATEGORIES if any(m in frame for m in marks)]
            if found:
                category = found[0]
                break
        counts[category] = counts.get(category, 0) + int(number)
    total = sum(counts.values())
    return {name: n / total for name, n in sorted(counts.items(), key=lambda kv: -kv[1])}


def profile_infer(
    settings: Settings, work: Path, env: dict[str, str], texts: list[str], seconds: int
) -> None:
    """py-spy on the one infer process while a burst drains; where its time went."""
    spy = Path(sys.executable).with_name("py-spy")
    name = "profile"
    folder = work / name
    raw = work / "infer-py-spy.txt"
    fixed = {
        "AIRPARADIS_INFER_REPLICAS": "1",
        "AIRPARADIS_SCALE_PREPROCESS_MIN": "1",
        "AIRPARADIS_SCALE_PREPROCESS_MAX": "1",
    }
    with platform(settings, folder, env | fixed) as (root, url):
        wait_running(folder.with_suffix(".log"), "infer", 1)
        [pid] = [p for p, role in descendants(root).items() if role == "infer"]
        tweets = [TweetSubmitted(text=t, source=name) for t in texts]
        record = [str(spy), "record", "-p", str(pid), "-d", str(seconds), "-r", "100", "-f", "raw"]
        recorder = subprocess.Popen(
            [*record, "-o", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        asyncio.run(bus_load(url, tweets))
        recorder.wait(timeout=seconds + 60)
    shares = profile_shares(raw.read_text().splitlines())
    print(f"\npy-spy, one infer process, {seconds:g} s of a burst ({raw}):")
    for category, share in shares.items():
        print(f"  {category:<42} {share:6.1%}")


def replicas_compare(
    settings: Settings, work: Path, env: dict[str, str], texts: list[str], args: Any
) -> None:
    counts: list[int] = args.replicas
    figures = Figures()
    warmup = min(len(texts), 100 * max(counts))
    for run in range(args.repeat):
        for count in order_of(counts, run):
            print(f"run {run + 1}/{args.repeat}: {count} infer process(es)", flush=True)
            measure_replicas(settings, work, count, run, env, texts, warmup, figures)
    base = f"r{counts[0]}"
    print()
    print(
        f"burst of {len(texts):,} tweets after a warm-up of {warmup}, {args.family} model, "
        f"batch {args.batch_size}, preprocess 1 process; {os.cpu_count()} cores; "
        f"{args.repeat} run(s) of each, min..max"
    )
    print()
    print(
        f"| infer processes | tweets/s | vs {counts[0]} | infer CPU ms/tweet | vs {counts[0]} "
        "| platform CPU ms/tweet | nats-server CPU ms/tweet | cores used (platform + nats) "
        "| cores used by others | rows | distinct ids | load at start |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        key = f"r{count}"
        print(
            f"| {count} | {figures.text(key + '.tweets_s', '{:,.0f}')} "
            f"| {figures.ratio(key + '.tweets_s', base + '.tweets_s')} "
            f"| {figures.text(key + '.infer_cpu', '{:.2f}')} "
            f"| {figures.ratio(key + '.infer_cpu', base + '.infer_cpu')} "
            f"| {figures.text(key + '.platform_cpu', '{:.2f}')} "
            f"| {figures.text(key + '.nats_cpu', '{:.2f}')} "
            f"| {figures.text(key + '.busy_cores', '{:.2f}')} "
            f"| {figures.text(key + '.others_cores', '{:.2f}')} "
            f"| {figures.text(key + '.rows', '{:.0f}')} | {figures.text(key + '.ids', '{:.0f}')} "
            f"| {figures.text(key + '.load', '{:.2f}')} |"
        )
    wrong = [
        k
        for k, values in figures.values.items()
        if k.endswith((".rows", ".ids")) and any(v != len(texts) for v in values)
    ]
    print()
    print("nothing lost or doubled" if not wrong else f"LOST OR DOUBLED: {wrong}")
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")
    if args.py_spy:
        profile_infer(settings, work, env, texts, args.py_spy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("AIRPARADIS_DATA"))
    parser.add_argument("--family", choices=("simple", "transformer"), default="simple")
    parser.add_argument("--sample", type=int, default=20_000, help="tweets the model learns")
    parser.add_argument(
        "--tweets", type=int, default=20_000, help="size of the burst (0: only the cold starts)"
    )
    parser.add_argument("--max-infer", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="AIRPARADIS_BATCH_MAX_SIZE")
    parser.add_argument("--target-backlog", type=int, default=2000)
    parser.add_argument("--up-after-s", type=float, default=2.0)
    parser.add_argument("--down-after-s", type=float, default=10.0)
    parser.add_argument(
        "--cold-starts", type=int, default=3, help="infer cold starts measured on an idle machine"
    )
    parser.add_argument(
        "--replicas",
        type=parse_counts,
        metavar="LIST",
        help="instead: infer fixed at each of these process counts (e.g. 1,2,4), side by side",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each count (--replicas)")
    parser.add_argument(
        "--py-spy",
        type=int,
        default=0,
        metavar="S",
        help="with --replicas: then py-spy on one infer process for S seconds of a burst",
    )
    args = parser.parse_args()
    if args.data is None:
        sys.exit("give --data or set AIRPARADIS_DATA")
    uptime = Path("/proc/loadavg").read_text().strip()
    work, settings = bench_champion(
        "airparadis-bench-scaling-", args.data, args.family, args.sample
    )
    texts = tweets_from(args.data, max(args.tweets, 1))
    common = {
        "AIRPARADIS_BATCH_MAX_SIZE": str(args.batch_size),
        "AIRPARADIS_SCALE_TARGET_BACKLOG": str(args.target_backlog),
        "AIRPARADIS_SCALE_UP_AFTER_S": str(args.up_after_s),
        "AIRPARADIS_SCALE_DOWN_AFTER_S": str(args.down_after_s),
    }
    configurations = {
        "scaling": {
            "AIRPARADIS_SCALE_INFER_MIN": "1",
            "AIRPARADIS_SCALE_INFER_MAX": str(args.max_infer),
            "AIRPARADIS_SCALE_PREPROCESS_MIN": "1",
            "AIRPARADIS_SCALE_PREPROCESS_MAX": "2",
        },
        "fixed-min": {
            "AIRPARADIS_INFER_REPLICAS": "1",
            "AIRPARADIS_SCALE_PREPROCESS_MIN": "1",
            "AIRPARADIS_SCALE_PREPROCESS_MAX": "1",
        },
        "fixed-max": {
            "AIRPARADIS_INFER_REPLICAS": str(args.max_infer),
            "AIRPARADIS_SCALE_PREPROCESS_MIN": "2",
            "AIRPARADIS_SCALE_PREPROCESS_MAX": "2",
        },
    }
    if args.replicas:
        replicas_compare(
            settings, work, {"AIRPARADIS_BATCH_MAX_SIZE": str(args.batch_size)}, texts, args
        )
        return
    if args.tweets:  # --tweets 0: only the cold starts
        outcomes = [
            run_one(settings, work, name, common | env, texts)
            for name, env in configurations.items()
        ]
        report(outcomes, args.tweets, uptime, args)
    if args.cold_starts:
        starts = idle_cold_starts(settings, work, args.cold_starts)
        figures = ", ".join(f"{s:.1f}" for s in starts)
        print(f"cold start of one infer process, idle machine: {figures} s")


if __name__ == "__main__":
    main()
