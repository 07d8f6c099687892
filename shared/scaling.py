"""What `airparadis up` reports of its scaling on backlog: processes per worker and the decisions
it made. The supervisor writes it to a file in home; the gateway's /monitor reads it.

A file rather than an event on the bus: the supervisor runs only in the embedded mode, on the
machine and home the gateway uses; a file needs no subject, no NATS account, no stream, and a
gateway that restarts reads the current figures at once instead of waiting for the next event.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

STATUS_FILE = "scaling.json"
RECENT_DECISIONS = 20


class ScaleDecision(BaseModel):
    """One process added or removed, with the figures it was decided on."""

    at: float  # Unix time
    worker: str
    backlog: int
    before: int
    after: int
    reason: str


class WorkerScale(BaseModel):
    """One scaled worker: its bounds, its processes now, its last backlog, its decisions."""

    minimum: int
    maximum: int
    processes: int
    backlog: int | None = None  # None: not sampled yet (the bus is away)
    added: int = 0
    removed: int = 0


class ScalingStatus(BaseModel):
    updated_at: float
    target_backlog: int
    workers: dict[str, WorkerScale] = Field(default_factory=dict)
    decisions: list[ScaleDecision] = Field(default_factory=list)  # the most recent last


def status_path(home: Path) -> Path:
    return home / STATUS_FILE


def write_status(home: Path, status: ScalingStatus) -> None:
    """Replace the file at once (a reader never sees half of it)."""
    path = status_path(home)
    partial = path.with_suffix(".tmp")
    partial.write_text(status.model_dump_json(indent=1))
    os.replace(partial, path)


def read_status(home: Path) -> ScalingStatus | None:
    """The last status written, or None (no supervisor here, or not written yet)."""
    with contextlib.suppress(OSError, ValidationError):
        return ScalingStatus.model_validate_json(status_path(home).read_bytes())
    return None
