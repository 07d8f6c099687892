"""infer's control side on the in-memory broker: model swaps, explanations, status."""

from __future__ import annotations

from shared import subjects
from shared.messages import (
    ExplainRequested,
    ExplanationReady,
    InferStatus,
    ModelPromoted,
    RequestFailed,
    ThresholdSet,
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


def threshold_set(version: str, threshold: float | None) -> dict[str, object]:
    event = ThresholdSet(
        model_name="airparadis-sentiment",
        model_version=version,
        mode="adaptive" if threshold is not None else "fixed",
        method="em",
        tweets=500,
        prior=0.2,
        prior_low=0.17,
        prior_high=0.23,
        precision=0.7,
        precision_low=0.65,
        precision_high=0.75,
        recall=0.5,
        target_precision=0.9,
        threshold_in_use=0.5,
        threshold=threshold,
        changed=threshold is not None,
        reached=True,
        reason="test",
    )
    return event.model_dump(mode="json")


async def test_a_threshold_set_for_the_serving_version_applies_and_fixed_mode_resets_it(
    plane: ControlPlane,
) -> None:
    await plane.publish(threshold_set("1", 0.8), subjects.MODELS_THRESHOLD)
    assert plane.holder.require().threshold == 0.8
    await plane.publish(threshold_set("1", None), subjects.MODELS_THRESHOLD)  # fixed mode
    assert plane.holder.require().threshold == 0.5  # the version's own


async def test_a_threshold_for_another_version_is_ignored_and_a_swap_starts_afresh(
    plane: ControlPlane,
) -> None:
    await plane.publish(threshold_set("2", 0.8), subjects.MODELS_THRESHOLD)
    assert plane.holder.require().threshold == 0.5
    await plane.publish(threshold_set("1", 0.7), subjects.MODELS_THRESHOLD)
    promoted = ModelPromoted(model_name="airparadis-sentiment", version="2")
    await plane.publish(promoted.model_dump(mode="json"), subjects.MODELS_PROMOTED)
    assert plane.holder.require().threshold == 0.95  # version 2's own, not version 1's set


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
