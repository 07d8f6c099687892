"""Structured logging: one JSON object a line, with the extra fields a call site passes."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            **({"process": self.process} if self.process else {}),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, not the one present at configuration
    (test runners and embedding apps swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(
    level: str = "INFO", json_lines: bool = True, process: str | None = None
) -> None:
    handler = StderrHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter(process))
    else:
        name = f" [{process}]" if process else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s{name} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("mlflow", "alembic", "urllib3", "httpx", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # FastStream's own lines (subscriber start and stop, task supervision) are only worth
    # reading when debugging; real failures come as warnings and errors.
    if root.level > logging.DEBUG:
        logging.getLogger("airparadis.bus").setLevel(logging.WARNING)
