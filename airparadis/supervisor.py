"""`airparadis up`: the whole platform on this machine, one process per worker, supervised.

The supervisor starts nats-server (unless AIRPARADIS_NATS_URL points at one), makes sure the
registry has a champion (training the baseline on first start), then runs the same commands
compose runs, each in its own process: `airparadis worker store` (it owns the chDB folder and
answers the others' reads), `worker preprocess`, `worker infer` (--infer-replicas of them, on one
durable consumer), `worker alerter` and `airparadis gateway`.

A child that exits is logged and restarted, after a pause that doubles while it keeps failing
(1 s to 30 s, back to 1 s once it ran a minute); a nats-server that dies is restarted on the
same port and folder, and the children reconnect by themselves. Ctrl-C (or SIGTERM) stops
the children, then nats-server; every child also dies with the supervisor, even on kill -9.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from shared.nats_server import DIE_WITH_PARENT, NatsServerError, NatsServerProcess
from shared.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.2
STOP_TIMEOUT_S = 20.0
RESTART_PAUSE_S = (1.0, 30.0)
HEALTHY_AFTER_S = 60.0


@dataclass
class Child:
    """One supervised process of the platform."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    pause_s: float = RESTART_PAUSE_S[0]
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@dataclass
class Supervisor:
    settings: Settings
    children: list[Child]
    env: dict[str, str]
    nats: NatsServerProcess | None = None
    nats_restarts: int = 0
    _stop: bool = field(default=False, repr=False)

    def request_stop(self, signum: int, _: FrameType | None = None) -> None:
        if self._stop:  # a second Ctrl-C: do not wait for the children
            for child in self.children:
                if child.process is not None and child.process.poll() is None:
                    child.process.kill()
        self._stop = True

    def run(self) -> int:
        """Start everything and keep it running until a signal; the exit code."""
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._start(child)
            while not self._stop:
                self._watch_nats()
                for child in self.children:
                    self._watch(child)
                time.sleep(POLL_S)
        finally:
            self._stop_children()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _start(self, child: Child) -> None:
        # Its own process group: Ctrl-C reaches the supervisor only, which stops the children
        # in order; they still die with it (DIE_WITH_PARENT) if it is killed.
        child.process = subprocess.Popen(
            child.args,
            env=self.env | {"AIRPARADIS_PROCESS_NAME": child.name},
            stdin=subprocess.DEVNULL,
            preexec_fn=DIE_WITH_PARENT,
            process_group=0,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("process started", extra={"child": child.name, "pid": child.pid})

    def _watch(self, child: Child) -> None:
        now = time.monotonic()
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self._start(child)
            return
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            if now - child.started_at > HEALTHY_AFTER_S:
                child.pause_s = RESTART_PAUSE_S[0]
            return
        ran_s = now - child.started_at
        log.error(
            "process exited; restarting it",
            extra={
                "child": child.name,
                "pid": child.pid,
                "code": code,
                "signal": signal.Signals(-code).name if code < 0 else None,
                "ran_s": round(ran_s, 1),
                "restart_in_s": child.pause_s,
            },
        )
        child.restart_at = now + child.pause_s
        child.pause_s = min(child.pause_s * 2, RESTART_PAUSE_S[1])

    def _watch_nats(self) -> None:
        nats = self.nats
        if nats is None or nats.process is None or nats.process.poll() is None:
            return
        log.error(
            "nats-server exited; restarting it",
            extra={"code": nats.process.returncode, "url": nats.url},
        )
        try:
            nats.start()
            self.nats_restarts += 1
        except NatsServerError as error:
            log.error("nats-server did not start again; trying again", extra={"reason": str(error)})
            time.sleep(1.0)

    def _stop_children(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("process did not stop in time; killing it", extra={"child": child.name})
                child.process.kill()
                child.process.wait()
        log.info("processes stopped", extra={"children": [c.name for c in self.children]})


def children_for(settings: Settings, cli_options: list[str], insecure: bool = False) -> list[Child]:
    """The processes of the platform: the same commands as the compose services."""
    command = [sys.executable, "-m", "airparadis", *cli_options]
    children = [Child("store", [*command, "worker", "store"])]
    children.append(Child("preprocess", [*command, "worker", "preprocess"]))
    for replica in range(settings.infer_replicas):
        name = "infer" if settings.infer_replicas == 1 else f"infer-{replica + 1}"
        children.append(Child(name, [*command, "worker", "infer"]))
    children.append(Child("alerter", [*command, "worker", "alerter"]))
    children.append(Child("gateway", [*command, "gateway", *(["--insecure"] if insecure else [])]))
    return children


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of every child: ours, with the settings `up` decided (the local
    nats-server's URL, options given on the command line) made explicit."""
    env = dict(os.environ)
    env |= {
        "AIRPARADIS_HOME": str(Path(settings.home).resolve()),
        "AIRPARADIS_HTTP_HOST": settings.http_host,
        "AIRPARADIS_HTTP_PORT": str(settings.http_port),
        "AIRPARADIS_INFER_REPLICAS": str(settings.infer_replicas),
    }
    if settings.nats_url:
        env["AIRPARADIS_NATS_URL"] = settings.nats_url
    if settings.data is not None:
        env["AIRPARADIS_DATA"] = str(Path(settings.data).resolve())
    return env


def up(
    settings: Settings, data: Path | None, cli_options: list[str], insecure: bool = False
) -> int:
    """The one command: local nats-server, a champion model, every worker and the gateway."""
    from airparadis.bootstrap import ensure_champion

    settings.home.mkdir(parents=True, exist_ok=True)
    nats = None
    if not settings.nats_url:
        nats = NatsServerProcess(
            settings.nats_store_dir, port=settings.nats_port, sync_interval=settings.durability
        )
        settings = settings.model_copy(update={"nats_url": nats.start()})
    try:
        ensure_champion(settings, data)
        supervisor = Supervisor(
            settings,
            children_for(settings, cli_options, insecure),
            child_environment(settings),
            nats,
        )
        log.info(
            "starting the platform",
            extra={
                "gateway": f"http://{settings.http_host}:{settings.http_port}",
                "processes": [c.name for c in supervisor.children],
            },
        )
        return supervisor.run()
    finally:
        if nats is not None:
            nats.stop()
