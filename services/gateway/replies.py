"""Answers to synchronous callers: each request waits on its own subject below one inbox.

The gateway publishes tweets.submitted with `reply_to` set to `<inbox>.<tweet id>`; infer
answers there once the scored tweet is durably published (or preprocess, with the reason, when
the tweet cannot be scored). Replicas of the gateway each have their own inbox.
"""

from __future__ import annotations

import asyncio
import uuid

from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError

from shared import subjects
from shared.messages import ScoringFailed, TweetScored


class ReplyWaiter:
    def __init__(self) -> None:
        self.inbox = f"{subjects.REPLY_PREFIX}.{uuid.uuid4().hex}"
        self._pending: dict[str, asyncio.Future[TweetScored | ScoringFailed]] = {}

    def subject_for(self, request_id: str) -> str:
        return f"{self.inbox}.{request_id}"

    def expect(self, request_id: str) -> asyncio.Future[TweetScored | ScoringFailed]:
        future: asyncio.Future[TweetScored | ScoringFailed] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def resolve(self, request_id: str, body: bytes) -> None:
        future = self._pending.pop(request_id, None)
        if future is None or future.done():
            return
        try:
            answer: TweetScored | ScoringFailed = TweetScored.model_validate_json(body)
        except ValidationError:
            answer = ScoringFailed.model_validate_json(body)
        future.set_result(answer)

    def register(self, broker: NatsBroker) -> None:
        @broker.subscriber(f"{self.inbox}.*")
        async def on_reply(msg: NatsMessage) -> None:
            request_id = msg.raw_message.subject.rsplit(".", 1)[-1]
            self.resolve(request_id, msg.body)
