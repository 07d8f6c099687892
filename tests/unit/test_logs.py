"""One log format at a time, for every library: the choice, MLflow's lines and warnings
routed through it, its CloudPickle warning explained, and bars only on a terminal."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator

import pytest

from shared.logs import configure_logging, use_json


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_auto_is_text_on_a_terminal_and_json_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert use_json("auto") is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert use_json("auto") is True
    assert use_json("json") is True and use_json("text") is False
    with pytest.raises(ValueError, match="expected one of auto, text, json"):
        use_json("yaml")


@pytest.mark.usefixtures("restore_logging")
def test_mlflow_lines_and_warnings_come_out_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_lines=True)
    logging_showwarning = warnings.showwarning  # what configure_logging put in place
    logging.getLogger("mlflow.store").warning("a store warning")
    with warnings.catch_warnings():  # inside pytest's own recorder: shown, as in a run
        warnings.simplefilter("always")
        warnings.showwarning = logging_showwarning
        warnings.warn("something deprecated", DeprecationWarning, stacklevel=1)
    lines = logged(capsys)
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("mlflow.store", "warning"),
        ("py.warnings", "warning"),
    ]
    assert "something deprecated" in lines[1]["message"]


@pytest.mark.usefixtures("restore_logging")
def test_the_cloudpickle_warning_is_one_explained_info_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_lines=True)
    logging.getLogger("mlflow.pyfunc").warning(
        "Passing a Python object as `python_model` causes it to be serialized using CloudPickle"
    )
    [line] = logged(capsys)
    assert line["level"] == "info" and "empty SentimentModel shell" in line["message"]


def test_mlflow_keeps_no_handler_of_its_own() -> None:
    """In a fresh interpreter: importing the platform, then MLflow, leaves MLflow's loggers
    without a handler, so they reach the platform's."""
    code = "import shared, logging, mlflow; print(len(logging.getLogger('mlflow').handlers))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"


def test_an_unknown_log_format_is_refused_by_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airparadis", "--log-format", "yaml", "models", "list"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert done.returncode == 2 and "expected one of auto, text, json" in done.stderr
