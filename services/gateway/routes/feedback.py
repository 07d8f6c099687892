"""POST /v1/feedback: report a wrong prediction; three reports within five minutes email the
team (one prediction counts once, however many reports it gets). The comment is minimised
before it is published, as a tweet is (shared/scrub.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.gateway.context import GatewayDep
from services.gateway.errors import GUARDED, ApiError, bus_unavailable, responses
from services.gateway.routes.predictions import IdempotencyKey, idempotent_id, known
from services.gateway.security import Caller, Require
from shared import subjects
from shared.jetstream import Outgoing
from shared.messages import MAX_COMMENT_CHARS, EventId, FeedbackReported, Label, new_id

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackRequest(BaseModel):
    prediction_id: EventId
    correct_label: Label | None = None
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class FeedbackAccepted(BaseModel):
    id: str
    prediction_id: str
    status: str = "reported"
    team_notified: bool = Field(
        False, description="This report completed a burst: an alert was raised and emailed."
    )
    alert_id: str | None = None


@router.post(
    "/feedback",
    response_model=FeedbackAccepted,
    status_code=202,
    responses=responses(400, 404, 413, 422, *GUARDED, 503, 504),
)
async def feedback(
    request: FeedbackRequest,
    gw: GatewayDep,
    caller: Annotated[Caller, Depends(Require("feedback", limit="feedback"))],
    wait_alert_ms: Annotated[
        int,
        Query(
            ge=0,
            le=5000,
            description="How long the answer waits for the alerter, to say whether this report "
            "completed a burst and the team was emailed (an alert raised later is emailed all "
            "the same; 0: answer at once).",
        ),
    ] = 1000,
    idempotency_key: IdempotencyKey = None,
) -> FeedbackAccepted:
    """Report a wrong prediction; three reports within five minutes email the team."""
    snapshot = await known(gw, request.prediction_id)
    if snapshot is None:
        raise ApiError(
            404, "unknown_prediction", f"no prediction with id {request.prediction_id!r}"
        )
    report_id = (
        idempotent_id(idempotency_key, caller.key_name, "feedback") if idempotency_key else new_id()
    )
    report = FeedbackReported(
        id=report_id,
        prediction_id=request.prediction_id,
        correct_label=request.correct_label,
        comment=None
        if request.comment is None
        else gw.minimised(request.comment, "comment", MAX_COMMENT_CHARS),
        prediction=snapshot,
        key_name=caller.key_name,
    )
    published = await gw.publisher.publish_one(
        Outgoing(subjects.FEEDBACK_REPORTED, report.model_dump_json().encode(), report.id),
        gw.settings.publish_timeout_s,
    )
    if published.unconfirmed:
        raise ApiError(
            504,
            "timeout",
            "the message bus did not confirm it took the report; retry with the same "
            "Idempotency-Key to be sure it counts once",
            id=report.id,
        )
    if not published.ok:
        raise bus_unavailable(f"did not take the report: {published.error}")
    alert_id = None
    if gw.alerts is not None:
        alert_id = await gw.alerts.alert_for(report.id, wait_alert_ms / 1000.0)
    return FeedbackAccepted(
        id=report.id,
        prediction_id=report.prediction_id,
        team_notified=alert_id is not None,
        alert_id=alert_id,
    )
