"""`airparadis up` started as a user starts it, and the tools the fault tests use on it: the
pids of its processes, an upstream app on its bus, and the store read through its store worker.
Every process started here is stopped by pid when the test ends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats

from airparadis.processes import descendants
from shared import subjects
from shared.messages import TweetSubmitted
from shared.nats_server import free_port, port_open
from shared.store_reads import BusStore

STARTUP_TIMEOUT_S = 180


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    base_url: str
    home: Path
    nats_port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    inbox: Any = None

    @property
    def nats_url(self) -> str:
        """The server it uses: the one it was pointed at, else the one it started."""
        return self.env.get("AIRPARADIS_NATS_URL") or f"nats://127.0.0.1:{self.nats_port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def pids(self) -> dict[str, list[int]]:
        """The processes of this platform by role (store, infer, gateway, nats-server…)."""
        found: dict[str, list[int]] = {}
        for pid, role in descendants(self.process.pid).items():
            found.setdefault(role, []).append(pid)
        return found

    def pid_of(self, role: str) -> int:
        [pid] = self.pids()[role]
        return pid


def create_key(running: Running, name: str, *scopes: str) -> str:
    """`airparadis keys create` while the platform runs (through its store worker): the key."""
    scope_options = [option for scope in scopes for option in ("--scope", scope)]
    created = subprocess.run(
        [sys.executable, "-m", "airparadis", "keys", "create", "--name", name, *scope_options],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr[-3000:]
    return created.stdout.strip().splitlines()[-1]


def wait_ready(running: Running, timeout: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(f"airparadis up exited early:\n{running.log_tail()}")
        try:
            if httpx.get(f"{running.base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready in {timeout:g} s:\n{running.log_tail()}")


@contextmanager
def launched(
    folder: Path,
    *,
    data: Path | None = None,
    env: dict[str, str] | None = None,
    nats_port: int | None = None,
    http_port: int | None = None,
    home: Path | None = None,
    log_name: str = "up.log",
) -> Iterator[Running]:
    """`airparadis up` in `folder`, ready; stopped with Ctrl-C at the end (killed if it must
    be), every process it started included."""
    http_port = http_port or free_port()
    nats_port = nats_port or free_port()
    home = home or folder / "home"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")} | {
        "AIRPARADIS_HOME": str(home),
        "AIRPARADIS_HTTP_PORT": str(http_port),
        "AIRPARADIS_NATS_PORT": str(nats_port),
    }
    environment |= env or {}
    log = folder / log_name
    args = [sys.executable, "-X", "faulthandler", "-m", "airparadis", "up"]
    if data is not None:
        args += ["--data", str(data)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, env=environment, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    running = Running(
        process, f"http://127.0.0.1:{http_port}", home, nats_port, log, env=environment
    )
    try:
        wait_ready(running)
        yield running
    finally:
        stop(running)


def stop(running: Running) -> None:
    """Ctrl-C, then insist; and make sure nothing it started is left."""
    started = descendants(running.process.pid)
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGINT)
        try:
            running.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
    kill_all(started)


def kill_all(pids: dict[int, str] | list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def crash(running: Running) -> None:
    """kill -9 of every process of the platform at once, nats-server included."""
    pids = [running.process.pid, *descendants(running.process.pid)]
    kill_all(pids)
    running.process.wait()
    deadline = time.monotonic() + 10
    while port_open("127.0.0.1", running.nats_port) and time.monotonic() < deadline:
        time.sleep(0.1)


def tweets(
    n: int, source: str, text: str = "Flight {i} was on time, thanks!"
) -> list[TweetSubmitted]:
    return [TweetSubmitted(text=text.format(i=i), source=source) for i in range(n)]


async def publish(url: str, batch: list[TweetSubmitted], chunk: int = 500) -> None:
    """An upstream app publishing on tweets.submitted, each acknowledged by JetStream."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for start in range(0, len(batch), chunk):
            acks = [
                await js.publish_async(
                    subjects.TWEETS_SUBMITTED,
                    t.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": t.id},
                )
                for t in batch[start : start + chunk]
            ]
            await asyncio.gather(*acks)
    finally:
        await nc.close()


async def query(url: str, sql: str, wait_s: float = 30) -> list[dict[str, Any]]:
    """Rows read through the platform's store worker (the test cannot open its chDB)."""
    nc = await nats.connect(url)
    try:
        store = BusStore(nc, asyncio.get_running_loop(), timeout_s=wait_s)
        return await asyncio.to_thread(store.query, sql)
    finally:
        await nc.close()


def scored_on_the_stream(url: str) -> int:
    """tweets.scored messages JetStream kept: one per tweet unless one was scored twice."""

    async def count() -> int:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(
                subjects.STREAM_TWEETS, subjects_filter=subjects.TWEETS_SCORED
            )
            return int((info.state.subjects or {}).get(subjects.TWEETS_SCORED, 0))
        finally:
            await nc.close()

    return asyncio.run(count())


def stored(running: Running, source: str) -> dict[str, int]:
    """How many rows of this source are stored, and how many distinct ids."""
    [row] = asyncio.run(
        query(
            running.nats_url,
            # No FINAL: the store never inserts an id twice, so every row counts.
            "SELECT count() AS rows, uniqExact(id) AS ids FROM predictions"
            f" WHERE source = '{source}'",
        )
    )
    return {"rows": int(row["rows"]), "ids": int(row["ids"])}


def wait_until(condition: Any, within: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as error:  # the platform may be restarting: ask again
            last = error
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {within:g} s (last error: {last})")
