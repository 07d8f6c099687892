"""infer's control side on the in-memory broker: model swaps, explanations, status."""

from __future__ import annotations

from shared import subjects
from shared.messages import (
    ExplainRequested,
    ExplanationReady,
    InferStatus,
    ModelPromoted,
    RequestFailed,
)
from tests.component.conftest import ControlPlane


async def test_promotion_swaps_the_model(plane: ControlPlane) -> None:
    promoted = ModelPromoted(model_name="airparadis-sentiment", version="2")
    await plane.publish(promoted.model_dump(mode="json"), subjects.MODELS_PROMOTED)
    model = plane.holder.require()
    assert model.version == "2"
    assert model.threshold == 0.95


async def test_promotion_of_another_model_name_is_ignored(plane: ControlPlane) -> None:
    promoted = ModelPromoted(model_name="someone-else", version="2")
    await plane.publish(promoted.model_dump(mode="json"), subjects.MODELS_PROMOTED)
    assert plane.holder.require().version == "1"


async def test_explain_answers_with_word_contributions(plane: ControlPlane) -> None:
    asked = ExplainRequested(text="Lost bag but great crew")
    reply = await plane.broker.request(asked.model_dump(mode="json"), subjects.EXPLAIN_REQUESTED)
    ready = ExplanationReady.model_validate_json(reply.body)
    assert ready.method == "occlusion"  # the fake model is not linear
    assert [w.word for w in ready.words] == ["Lost", "bag", "but", "great", "crew"]
    great = ready.words[3]
    assert great.contribution > 0 and "Lost bag but great crew"[great.start : great.end] == "great"


async def test_explain_without_a_model_says_so_with_a_typed_reply(plane: ControlPlane) -> None:
    plane.holder.current = None
    asked = ExplainRequested(text="hello")
    reply = await plane.broker.request(asked.model_dump(mode="json"), subjects.EXPLAIN_REQUESTED)
    failed = RequestFailed.model_validate_json(reply.body)
    assert failed.kind == "model_not_ready"


async def test_status_says_which_model_serves(plane: ControlPlane) -> None:
    reply = await plane.broker.request(None, subjects.INFER_STATUS)
    status = InferStatus.model_validate_json(reply.body)
    assert status.ready and status.model_version == "1" and status.threshold == 0.5
