"""Answers to synchronous callers: each request waits on its own subject below one inbox.

The gateway publishes tweets.submitted with `reply_to` set to `<inbox>.<tweet id>`; infer
answers there once the scored tweet is stored in JetStream (or preprocess, with the reason,
when the tweet cannot be scored). Replicas of the gateway each have their own inbox. The
subscription is plain nats-py: a reply resolves its future in the callback, with no framework
machinery and no thread hop in between.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from pydantic import ValidationError

from shared import subjects
from shared.messages import ScoringFailed, TweetScored

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

Answer = TweetScored | ScoringFailed


class ReplyWaiter:
    def __init__(self) -> None:
        self.inbox = f"{subjects.REPLY_PREFIX}.{uuid.uuid4().hex}"
        self._pending: dict[str, list[asyncio.Future[Answer]]] = {}

    def subject_for(self, request_id: str) -> str:
        return f"{self.inbox}.{request_id}"

    def expect(self, request_id: str) -> asyncio.Future[Answer]:
        """A future for the answer to `request_id` (several callers may wait on one id: a
        retry with the same idempotency key)."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(request_id, []).append(future)
        return future

    def forget(self, request_id: str, future: asyncio.Future[Answer]) -> None:
        waiting = self._pending.get(request_id)
        if waiting and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._pending[request_id]

    def resolve(self, request_id: str, body: bytes) -> None:
        waiting = self._pending.pop(request_id, None)
        if not waiting:
            return
        try:
            answer: Answer = TweetScored.model_validate_json(body)
        except ValidationError:
            try:
                answer = ScoringFailed.model_validate_json(body)
            except ValidationError:
                answer = ScoringFailed(id=request_id, reason="unreadable answer from the pipeline")
        for future in waiting:
            if not future.done():
                future.set_result(answer)

    async def start(self, nc: Client) -> None:
        async def on_reply(msg: Msg) -> None:
            self.resolve(msg.subject.rsplit(".", 1)[-1], msg.data)

        await nc.subscribe(f"{self.inbox}.*", cb=on_reply)
