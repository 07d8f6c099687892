"""Real server images started by testcontainers; skipped, with the reason, without Docker."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request

import pytest


def why_no_docker() -> str | None:
    try:
        import docker
    except ImportError:
        return "the docker SDK is missing (pip install -e '.[dev]')"
    try:
        docker.from_env().ping()
    except Exception as error:
        return f"no Docker engine answers: {error}"
    return None


def require_docker() -> None:
    if reason := why_no_docker():
        pytest.skip(reason)


def wait_http(
    url: str,
    within: float = 120.0,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Wait until `url` answers 200 (a container's start time varies a lot on CI); an https
    URL is checked with `context`."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=3, context=context) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last = error
        time.sleep(1.0)
    raise AssertionError(f"{url} did not answer 200 within {within:g} s: {last}")
