"""Real servers for integration and end-to-end tests: nats-server, SMTP, an MLflow registry."""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from airparadis.bus_init import init_bus
from shared.nats_server import NatsServerProcess, free_port
from shared.settings import Settings


@dataclass
class Inbox:
    """What the SMTP server received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


@contextmanager
def nats_server(store_dir: Path, *, streams: bool = True) -> Iterator[NatsServerProcess]:
    """A nats-server; with `streams`, the platform's streams made as `airparadis bus init`
    makes them (default settings), as `up` and compose do before any worker starts."""
    server = NatsServerProcess(store_dir)
    server.start()
    try:
        if streams:
            asyncio.run(init_bus(Settings(nats_url=server.url), wait_s=10))
        yield server
    finally:
        server.stop()


@dataclass
class ClusterNode:
    """One nats-server of a test cluster: its process and where it listens."""

    name: str
    server: NatsServerProcess
    monitor_port: int

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        """kill -9: no goodbye to the other nodes, nothing flushed."""
        assert self.server.process is not None
        self.server.process.kill()
        self.server.process.wait()

    def jsz(self) -> dict[str, Any]:
        """This node's own view of JetStream (/jsz): its streams, as stored on its disk."""
        import json
        import urllib.request

        url = f"http://127.0.0.1:{self.monitor_port}/jsz?accounts=true&streams=true"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return dict(json.load(answer))

    def stream_state(self, stream: str) -> tuple[int, int] | None:
        """(messages, last sequence) of `stream` in this node's replica (None: none here)."""
        for account in self.jsz().get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail["name"] == stream:
                    state = detail["state"]
                    return int(state["messages"]), int(state["last_seq"])
        return None


@contextmanager
def nats_cluster(folder: Path, size: int = 3) -> Iterator[list[ClusterNode]]:
    """`size` nats-servers on loopback ports with routes between them (one JetStream cluster),
    each with its own store folder; every one stopped on the way out."""
    names = [f"n{k}" for k in range(1, size + 1)]
    route_ports = {name: free_port() for name in names}
    routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in route_ports.values())
    nodes: list[ClusterNode] = []
    try:
        for name in names:
            store = folder / name
            store.mkdir(parents=True, exist_ok=True)
            monitor = free_port()
            config = store / "cluster.conf"
            config.write_text(
                f"server_name: {name}\n"
                f"http: 127.0.0.1:{monitor}\n"
                "cluster {\n"
                "  name: airparadis-test\n"
                f"  listen: 127.0.0.1:{route_ports[name]}\n"
                f"  routes: [{routes}]\n"
                "}\n",
                encoding="utf-8",
            )
            server = NatsServerProcess(store, config_file=config)
            server.start()
            nodes.append(ClusterNode(name, server, monitor))
        yield nodes
    finally:
        for node in nodes:
            node.server.stop()


async def eventually(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    within: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> None:
    """Wait for a condition instead of sleeping a guessed time."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within:g} s")
        await asyncio.sleep(interval)


def json_attachment(message: Message) -> Any:
    """The alert.json part of an alert email, parsed."""
    import json

    for part in message.walk():
        if part.get_filename() == "alert.json":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return json.loads(payload)
    raise AssertionError("no alert.json attachment")
