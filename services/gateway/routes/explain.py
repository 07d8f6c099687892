"""POST /v1/explain: which words pushed the tweet toward positive or negative, answered by an
infer worker over rpc.infer.explain (not stored). The text is minimised first, as for
/v1/predict: the explanation is of the text the model scores, its offsets into that text."""

from __future__ import annotations

from fastapi import APIRouter
from nats.errors import NoRespondersError
from pydantic import BaseModel, Field, ValidationError

from services.gateway.context import GatewayDep
from services.gateway.errors import GUARDED, ApiError, bus_unavailable, responses, unavailable
from services.gateway.routes.predictions import Predictor
from shared import subjects
from shared.messages import (
    MAX_TWEET_CHARS,
    ExplainRequested,
    ExplanationReady,
    RequestFailed,
    TweetText,
    WordContribution,
)

router = APIRouter(prefix="/v1", tags=["explain"])


class ExplainRequest(BaseModel):
    text: TweetText
    budget_ms: int = Field(1500, ge=50, le=30_000, description="Time budget of the explanation.")


class Explanation(ExplanationReady):
    """The words of the tweet with their push, and the strongest ones each way."""

    top_positive: list[WordContribution]
    top_negative: list[WordContribution]


@router.post(
    "/explain",
    response_model=Explanation,
    responses=responses(400, 413, 422, *GUARDED, 503, 504),
)
async def explain(request: ExplainRequest, gw: GatewayDep, caller: Predictor) -> Explanation:
    """Which words pushed the tweet toward positive or negative (not stored)."""
    if not gw.connection.connected:
        raise bus_unavailable("is not connected")
    text = gw.minimised(request.text, "text", MAX_TWEET_CHARS)
    asked = ExplainRequested(text=text, budget_ms=request.budget_ms)
    try:
        reply = await gw.nc.request(
            subjects.EXPLAIN_REQUESTED,
            asked.model_dump_json().encode(),
            timeout=request.budget_ms / 1000.0 + gw.settings.predict_timeout_s,
        )
    except NoRespondersError as exc:
        raise unavailable("model_not_ready", "no infer worker is running") from exc
    except TimeoutError as exc:
        raise ApiError(504, "timeout", "no infer worker answered in time (see /readyz)") from exc
    except Exception as exc:
        raise bus_unavailable(f"did not take the request: {exc}") from exc
    try:
        ready = ExplanationReady.model_validate_json(reply.data)
    except ValidationError:
        failed = RequestFailed.model_validate_json(reply.data)
        if failed.kind == "model_not_ready":
            raise unavailable("model_not_ready", failed.reason) from None
        raise ApiError(422, "unexplainable", failed.reason) from None
    ranked = sorted(ready.words, key=lambda w: -abs(w.contribution))
    return Explanation(
        **ready.model_dump(),
        top_positive=[w for w in ranked if w.contribution > 0][:5],
        top_negative=[w for w in ranked if w.contribution < 0][:5],
    )
