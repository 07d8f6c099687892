"""One log format at a time, for every library: readable text on a terminal, one JSON object a
line (with the extra fields a call site passes) otherwise or when asked.

`configure_logging` routes everything through it: the platform's loggers, MLflow's (its own
handler is off, shared/__init__.py), Python warnings, and the libraries' progress bars, which
only draw on a terminal.
"""

from __future__ import annotations

import json
import logging
import os
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


LOG_FORMATS = ("auto", "text", "json")


class CloudPickleNote(logging.Filter):
    """MLflow warns that a model logged as a Python object is pickled with CloudPickle, which
    can run code when unpickled. Here that object is an empty SentimentModel shell (its state is
    in JSON and estimator files), and only the registry's owner can write a model into it: the
    warning becomes one INFO line saying so (README: "Security and personal data")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("mlflow") and "CloudPickle" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = (
                "the model is pickled with CloudPickle: an empty SentimentModel shell, its "
                "state in JSON and estimator files; keep the MLflow registry writable by you only"
            )
            record.args = ()
        return True


def use_json(log_format: str) -> bool:
    """auto: text on a terminal, JSON lines otherwise (a container, a file, a pipe)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


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
    handler.addFilter(CloudPickleNote())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # warnings.warn(...) as log lines, in the same format (off first: a second configuration
    # would otherwise keep whatever showwarning was in place by then).
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    # MLflow's artifact download bars: on a terminal only, as every bar of the platform.
    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true" if sys.stderr.isatty() else "false"
    )
    for noisy in ("mlflow", "alembic", "urllib3", "httpx", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow says why a model is pickled at INFO (CloudPickleNote), once per model logged.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.INFO)
    # FastStream's own lines (subscriber start and stop, task supervision) are only worth
    # reading when debugging; real failures come as warnings and errors.
    if root.level > logging.DEBUG:
        logging.getLogger("airparadis.bus").setLevel(logging.WARNING)
