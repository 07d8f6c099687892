"""Scaling on backlog for `airparadis up`: how many processes each hot worker runs.

`decide` is the pure rule: one process more when the backlog per process stays above the target
for `up_after_s`; one fewer when, with one fewer, the backlog per process would still stay under
half the target for `down_after_s` (so a removal never calls for an addition at once); never
under the minimum nor over the maximum. With a minimum of 0, the last process goes only when
nothing waits, and the first message that waits starts one at once.

`BacklogSampler` reads the backlogs (num_pending + num_ack_pending of each worker's durable
consumer) on its own NATS connection, in a thread, for the supervisor's synchronous loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from shared import subjects
from shared.bus import nats_credentials, nats_servers
from shared.settings import Settings

log = logging.getLogger(__name__)

# The scaled workers and the durable consumer whose backlog each one drains. The store is not
# scaled: it owns the chDB folder, which one process only may open.
SCALED: dict[str, tuple[str, str]] = {
    "preprocess": (subjects.STREAM_TWEETS, subjects.DURABLE_PREPROCESS),
    "infer": (subjects.STREAM_TWEETS, subjects.DURABLE_INFER),
}
LOW_MARK = 0.5  # of the target: the backlog per process under which one is removed


@dataclass(frozen=True)
class ScalePolicy:
    minimum: int
    maximum: int
    target_backlog: int  # per process
    up_after_s: float
    down_after_s: float

    @property
    def fixed(self) -> bool:
        return self.minimum == self.maximum


@dataclass
class ScaleTimer:
    """Since when the backlog has called for one process more, or one fewer (None: it does not)."""

    above_since: float | None = None
    below_since: float | None = None


@dataclass(frozen=True)
class Decision:
    after: int
    reason: str


def decide(
    policy: ScalePolicy, timer: ScaleTimer, processes: int, backlog: int, now: float
) -> Decision | None:
    """One process more, one fewer, or None; updates `timer` with this sample."""
    if processes < policy.minimum:
        return Decision(policy.minimum, f"under the minimum {policy.minimum}")
    if processes > policy.maximum:
        return Decision(policy.maximum, f"over the maximum {policy.maximum}")
    if processes == 0 and backlog > 0:  # a minimum of 0: the first message starts one
        return Decision(1, f"backlog {backlog} and no process")
    per_process = backlog / max(processes, 1)
    if per_process > policy.target_backlog and processes < policy.maximum:
        timer.below_since = None
        timer.above_since = now if timer.above_since is None else timer.above_since
        if now - timer.above_since >= policy.up_after_s:
            timer.above_since = None
            return Decision(
                processes + 1,
                f"backlog per process {per_process:.0f} above {policy.target_backlog} for "
                f"{policy.up_after_s:g} s",
            )
        return None
    timer.above_since = None
    low = LOW_MARK * policy.target_backlog
    # The last process goes (a minimum of 0) only when nothing at all waits.
    fewer_fit = backlog == 0 if processes == 1 else backlog / (processes - 1) < low
    if processes > policy.minimum and fewer_fit:
        timer.below_since = now if timer.below_since is None else timer.below_since
        if now - timer.below_since >= policy.down_after_s:
            timer.below_since = None
            return Decision(
                processes - 1,
                f"backlog {backlog} under {low:g} per process with one fewer for "
                f"{policy.down_after_s:g} s",
            )
        return None
    timer.below_since = None
    return None


def policies(settings: Settings) -> dict[str, ScalePolicy]:
    """Each scaled worker's bounds: --infer-replicas N is a fixed count (min = max = N)."""
    infer = (
        (settings.infer_replicas, settings.infer_replicas)
        if settings.infer_replicas is not None
        else (settings.scale_infer_min, settings.scale_infer_max)
    )
    bounds = {
        "preprocess": (settings.scale_preprocess_min, settings.scale_preprocess_max),
        "infer": infer,
    }
    return {
        worker: ScalePolicy(
            low,
            high,
            settings.scale_target_backlog,
            settings.scale_up_after_s,
            settings.scale_down_after_s,
        )
        for worker, (low, high) in bounds.items()
    }


class BacklogSampler:
    """The backlog of each scaled worker's consumer, sampled every `interval_s` in a thread.

    `backlogs()` gives the last figures (a worker is missing while the bus is away or its
    consumer is not created yet: no decision is made on figures that are not there)."""

    def __init__(self, settings: Settings, workers: dict[str, tuple[str, str]]) -> None:
        self._settings = settings
        self._workers = workers
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def backlogs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._latest)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._sample_forever())
            except Exception as error:  # the bus is not there yet: no figures, try again
                log.warning(
                    "cannot sample the backlogs; trying again", extra={"reason": str(error)}
                )
                with self._lock:
                    self._latest.clear()
                self._stop.wait(1.0)

    async def _sample_forever(self) -> None:
        import nats

        settings = self._settings
        nc = await nats.connect(
            servers=nats_servers(settings),
            name="airparadis-supervisor",
            max_reconnect_attempts=-1,
            reconnect_time_wait=settings.nats_reconnect_wait_s,
            allow_reconnect=True,
            **nats_credentials(settings),
        )
        js = nc.jetstream()
        try:
            while not self._stop.is_set():
                for worker, (stream, durable) in self._workers.items():
                    try:
                        info = await js.consumer_info(stream, durable, timeout=2.0)
                    except Exception as error:
                        log.debug("no consumer info", extra={"durable": durable, "error": error})
                        with self._lock:
                            self._latest.pop(worker, None)
                        continue
                    with self._lock:
                        self._latest[worker] = int(info.num_pending or 0) + int(
                            info.num_ack_pending or 0
                        )
                await asyncio.sleep(settings.scale_interval_s)
        finally:
            await nc.close()
