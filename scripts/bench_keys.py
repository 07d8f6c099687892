"""What API keys cost per request: `airparadis up` with keys required, then without, on the same
folder, one client at a time (keep-alive), rate limits off so that only the key is measured.

- lookup alone: `KeyRing.authenticate` as the gateway does it in the embedded mode (a query to
  the store worker on the bus, chDB there), from this process;
- GET /healthz (no key) and GET /v1/whoami (the key looked up), with keys on;
- POST /v1/predict with the key (keys on) and without (keys off): the difference is the cost a
  scored tweet pays.

    .venv/bin/python scripts/bench_keys.py --requests 1000

The baseline model is trained on the committed fixture tweets (the model does not matter here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import nats
import numpy as np

from shared.keys import KeyRing
from shared.nats_server import free_port
from shared.store_reads import BusStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "airline_tweets.csv"


@contextmanager
def platform(home: Path, auth: str, log: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`airparadis up` in `home`; its base URL and environment."""
    http_port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(home),
        "AIRPARADIS_HTTP_PORT": str(http_port),
        "AIRPARADIS_NATS_PORT": str(nats_port),
        "AIRPARADIS_AUTH": auth,
        "AIRPARADIS_TRAIN_SAMPLE": "100",
        "AIRPARADIS_CHECK_INTERVAL_S": "0",
        "AIRPARADIS_RATE_LIMIT_PER_S": "0",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airparadis", "--log-level", "WARNING", "up", "--data", FIXTURE],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                sys.exit(f"airparadis up exited; see {log}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            sys.exit(f"not ready in 300 s; see {log}")
        yield base, env
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def timed(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):  # warm up
        call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def expect(status: int) -> Callable[[httpx.Response], httpx.Response]:
    def check(response: httpx.Response) -> httpx.Response:
        if response.status_code != status:
            sys.exit(f"{response.request.url}: {response.status_code} {response.text}")
        return response

    return check


async def lookup_times(nats_url: str, key: str, n: int) -> list[float]:
    nc = await nats.connect(nats_url)
    try:
        ring = KeyRing(BusStore(nc, asyncio.get_running_loop()))
        return await asyncio.to_thread(timed, lambda: ring.authenticate(key), n)
    finally:
        await nc.close()


def row(name: str, times: list[float]) -> str:
    p50, p95, p99 = (float(np.quantile(times, q)) for q in (0.5, 0.95, 0.99))
    return f"| {name} | {p50:.2f} | {p95:.2f} | {p99:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per measure")
    args = parser.parse_args()
    n = args.requests
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as folder:
        home, log = Path(folder) / "home", Path(folder) / "up.log"
        with platform(home, "on", log) as (base, env):
            created = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "airparadis",
                    "keys",
                    "create",
                    "--name",
                    "b",
                    "--scope",
                    "predict",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            key = created.stdout.strip().splitlines()[-1]
            nats_url = f"nats://127.0.0.1:{env['AIRPARADIS_NATS_PORT']}"
            rows.append(
                row("key lookup alone (bus + chDB)", asyncio.run(lookup_times(nats_url, key, n)))
            )
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, timeout=30) as http:
                ok = expect(200)
                rows.append(
                    row("GET /healthz (no key)", timed(lambda: ok(http.get("/healthz")), n))
                )
                rows.append(
                    row(
                        "GET /v1/whoami (key looked up)",
                        timed(lambda: ok(http.get("/v1/whoami", headers=headers)), n),
                    )
                )
                rows.append(
                    row(
                        "POST /v1/predict, keys on",
                        timed(
                            lambda: ok(
                                http.post("/v1/predict", json={"text": "nice"}, headers=headers)
                            ),
                            n,
                        ),
                    )
                )
        with (
            platform(home, "off", log) as (base, _),
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            ok = expect(200)
            rows.append(
                row(
                    "POST /v1/predict, keys off",
                    timed(lambda: ok(http.post("/v1/predict", json={"text": "nice"})), n),
                )
            )
    print(f"{n} requests each, one client; ms")
    print("| | p50 | p95 | p99 |\n| --- | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
