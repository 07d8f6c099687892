"""`airparadis up`: the whole platform on this machine, one process per worker, supervised.

The supervisor starts nats-server (unless AIRPARADIS_NATS_URL points at one), makes sure the
registry has a champion (training the baseline on first start), then runs the same commands
compose runs, each in its own process: `airparadis worker store` (it owns the chDB folder and
answers the others' reads), `worker preprocess` and `worker infer` (each between its minimum and
maximum number of processes on one durable consumer, scaled on its backlog: airparadis/scaling.py;
--infer-replicas N is a fixed count), `worker alerter` and `airparadis gateway`.

A child that exits is logged and restarted, after a pause that doubles while it keeps failing
(1 s to 30 s, back to 1 s once it ran a minute); a nats-server that dies is restarted on the
same port and folder, and the children reconnect by themselves.

A process scaled down gets SIGTERM: it finishes or hands back the batch in hand (BatchStage),
and what it held unacknowledged is redelivered to the others. Ctrl-C (or SIGTERM) stops the
children, then nats-server; every child also dies with the supervisor, even on kill -9.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from airparadis.bus_init import init_bus
from airparadis.scaling import (
    SCALED,
    BacklogSampler,
    ScalePolicy,
    ScaleTimer,
    decide,
    policies,
)
from shared.nats_server import DIE_WITH_PARENT, NatsServerError, NatsServerProcess
from shared.scaling import (
    RECENT_DECISIONS,
    ScaleDecision,
    ScalingStatus,
    WorkerScale,
    write_status,
)
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
    worker: str = ""  # the scaled worker it is a process of (empty: not scaled)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    pause_s: float = RESTART_PAUSE_S[0]
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@dataclass
class Pool:
    """The processes of one scaled worker: its bounds, the command of each, its counts."""

    worker: str
    policy: ScalePolicy
    args: list[str]
    timer: ScaleTimer = field(default_factory=ScaleTimer)
    backlog: int | None = None
    added: int = 0
    removed: int = 0


@dataclass
class Supervisor:
    settings: Settings
    children: list[Child]
    env: dict[str, str]
    nats: NatsServerProcess | None = None
    nats_restarts: int = 0
    pools: dict[str, Pool] = field(default_factory=dict)
    sampler: BacklogSampler | None = None
    retiring: list[tuple[Child, float]] = field(default_factory=list)  # (child, SIGTERM at)
    decisions: list[ScaleDecision] = field(default_factory=list)
    _next_scale_at: float = field(default=0.0, repr=False)
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
            if self.sampler is not None:
                self.sampler.start()
            while not self._stop:
                self._watch_nats()
                for child in self.children:
                    self._watch(child)
                self._reap()
                if self.sampler is not None and time.monotonic() >= self._next_scale_at:
                    self._next_scale_at = time.monotonic() + self.settings.scale_interval_s
                    self._scale(self.sampler.backlogs())
                time.sleep(POLL_S)
        finally:
            if self.sampler is not None:
                self.sampler.stop()
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

    def processes_of(self, worker: str) -> list[Child]:
        return [child for child in self.children if child.worker == worker]

    def _scale(self, backlogs: dict[str, int], now: float | None = None) -> None:
        """One decision per scaled worker on its last backlog; then the status file."""
        now = time.monotonic() if now is None else now
        for pool in self.pools.values():
            pool.backlog = backlogs.get(pool.worker)
            if pool.backlog is None or pool.policy.fixed:
                continue  # no figures (the bus is away): no decision
            before = len(self.processes_of(pool.worker))
            decision = decide(pool.policy, pool.timer, before, pool.backlog, now)
            if decision is None:
                continue
            for _ in range(decision.after - before):
                self._add(pool)
            for _ in range(before - decision.after):
                self._remove(pool)
            record = ScaleDecision(
                at=time.time(),
                worker=pool.worker,
                backlog=pool.backlog,
                before=before,
                after=decision.after,
                reason=decision.reason,
            )
            self.decisions = [*self.decisions, record][-RECENT_DECISIONS:]
            log.info("scaled", extra=record.model_dump())
        self._write_status()

    def _add(self, pool: Pool) -> None:
        taken = {child.name for child in self.processes_of(pool.worker)}
        taken |= {child.name for child, _ in self.retiring}
        name = next(
            candidate
            for k in range(1, 100)
            if (candidate := pool.worker if k == 1 else f"{pool.worker}-{k}") not in taken
        )
        child = Child(name, pool.args, worker=pool.worker)
        self.children.append(child)
        pool.added += 1
        self._start(child)

    def _remove(self, pool: Pool) -> None:
        """The last one added gets SIGTERM: it finishes or hands back its batch, then exits."""
        child = self.processes_of(pool.worker)[-1]
        self.children.remove(child)
        pool.removed += 1
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            self.retiring.append((child, time.monotonic()))

    def _reap(self) -> None:
        """Processes scaled down: gone, or killed once they had STOP_TIMEOUT_S to stop."""
        still = []
        for child, since in self.retiring:
            assert child.process is not None
            code = child.process.poll()
            if code is not None:
                log.info("process stopped (scaled down)", extra={"child": child.name, "code": code})
            elif time.monotonic() - since > STOP_TIMEOUT_S:
                log.warning("process did not stop in time; killing it", extra={"child": child.name})
                child.process.kill()
                still.append((child, since))
            else:
                still.append((child, since))
        self.retiring = still

    def _write_status(self) -> None:
        status = ScalingStatus(
            updated_at=time.time(),
            target_backlog=self.settings.scale_target_backlog,
            workers={
                pool.worker: WorkerScale(
                    minimum=pool.policy.minimum,
                    maximum=pool.policy.maximum,
                    processes=len(self.processes_of(pool.worker)),
                    backlog=pool.backlog,
                    added=pool.added,
                    removed=pool.removed,
                )
                for pool in self.pools.values()
            },
            decisions=self.decisions,
        )
        try:
            write_status(self.settings.home, status)
        except OSError as error:
            log.warning("cannot write the scaling status", extra={"reason": str(error)})

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
        # Those scaled down already had their SIGTERM: a second one would end them at once.
        running += [child for child, _ in self.retiring]
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


def pools_for(settings: Settings, cli_options: list[str]) -> dict[str, Pool]:
    """The scaled workers (preprocess, infer), each with its bounds and its command."""
    command = [sys.executable, "-m", "airparadis", *cli_options]
    return {
        worker: Pool(worker, policy, [*command, "worker", worker])
        for worker, policy in policies(settings).items()
    }


def children_for(settings: Settings, cli_options: list[str], insecure: bool = False) -> list[Child]:
    """The processes of the platform at start: the same commands as the compose services, each
    scaled worker at its minimum."""
    command = [sys.executable, "-m", "airparadis", *cli_options]
    children = [Child("store", [*command, "worker", "store"])]
    for pool in pools_for(settings, cli_options).values():
        for k in range(1, pool.policy.minimum + 1):
            name = pool.worker if k == 1 else f"{pool.worker}-{k}"
            children.append(Child(name, pool.args, worker=pool.worker))
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
        # The streams, before any process binds to them (README, Scaling out).
        for outcome in asyncio.run(init_bus(settings)):
            if outcome.action != "unchanged":
                log.info(
                    f"stream {outcome.action}",
                    extra={"stream": outcome.name, "changes": outcome.changes},
                )
        ensure_champion(settings, data)
        supervisor = Supervisor(
            settings,
            children_for(settings, cli_options, insecure),
            child_environment(settings),
            nats,
            pools=pools_for(settings, cli_options),
            sampler=BacklogSampler(settings, SCALED),
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
