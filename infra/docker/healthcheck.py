"""Container healthcheck of the airparadis image, for every role (stdlib only, no network tools).

- gateway: GET /healthz on the gateway's port answers 200;
- a worker: the process holds an established TCP connection to the NATS server of
  AIRPARADIS_NATS_URL (a worker that lost the bus and cannot reconnect is unhealthy);
- anything else (migrate, train, models): healthy, it is a one-shot.

The role is read from the command line of PID 1 (`airparadis gateway`, `airparadis worker …`).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ESTABLISHED = "01"


def role(cmdline: list[str]) -> str:
    """gateway, worker or other, from the arguments of the airparadis command."""
    for arg in cmdline[1:]:
        if arg in ("gateway", "worker"):
            return arg
    return "other"


def nats_port(url: str | None) -> int:
    first = (url or "nats://127.0.0.1:4222").split(",")[0]
    return urlparse(first).port or 4222


def established_remote_ports(proc_net_tcp: str) -> set[int]:
    """Remote ports of the established connections in a /proc/net/tcp(6) table."""
    ports = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == ESTABLISHED:
            ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def connected_to(port: int, proc: Path = Path("/proc/net")) -> bool:
    tables = (proc / name for name in ("tcp", "tcp6"))
    text = "\n".join(t.read_text() for t in tables if t.exists())
    return port in established_remote_ports(text)


def gateway_healthy() -> bool:
    port = os.environ.get("AIRPARADIS_HTTP_PORT", "8000")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as answer:
        return bool(answer.status == 200)


def main() -> int:
    cmdline = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    kind = role([arg for arg in cmdline if arg])
    try:
        if kind == "gateway":
            healthy = gateway_healthy()
        elif kind == "worker":
            healthy = connected_to(nats_port(os.environ.get("AIRPARADIS_NATS_URL")))
        else:
            healthy = True
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    print("healthy" if healthy else f"unhealthy ({kind})")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
