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

from shared.nats_server import NatsServerProcess, free_port


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
def nats_server(store_dir: Path) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(store_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
