"""Schemathesis against `airparadis up`: every operation of /openapi.json, all checks (no 5xx,
every status and body as documented, schema-valid requests accepted and invalid ones
refused), a few hundred generated cases plus stateful sequences (predict, then fetch and
report what it answered)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.launch import Running, launched

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

MAX_EXAMPLES = 40
SEED = 20261130  # fixed: a failure is reproducible with the same command


def schemathesis() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is not installed: run scripts/install.sh")
    return found


def test_the_api_conforms_to_its_openapi_document_under_generated_requests(
    tmp_path: Path, registry: str
) -> None:
    env = {
        "AIRPARADIS_MLFLOW_TRACKING_URI": registry,
        "AIRPARADIS_CHECK_INTERVAL_S": "0",
        # Hundreds of requests from one client: the conformance, not the rate limits (429 is
        # documented, but a valid request refused for its rate reads as a failure).
        "AIRPARADIS_RATE_LIMIT_PER_S": "0",
        "AIRPARADIS_FEEDBACK_RATE_PER_S": "0",
    }
    with launched(tmp_path, env=env) as running:
        result = run_schemathesis(running, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout


def run_schemathesis(running: Running, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            schemathesis(),
            "run",
            f"{running.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
    )
