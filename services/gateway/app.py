"""The HTTP API: predictions and feedback go through the event pipeline, never in-process.

POST /v1/predict publishes tweets.submitted and waits for the scored answer on its own reply
subject; POST /v1/feedback checks the prediction exists and publishes feedback.reported.
Every error is JSON: {"error": <kind>, "reason": <what to fix>}.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from faststream.nats import NatsBroker
from pydantic import BaseModel, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.alerts import AlertWatcher
from services.gateway.monitor import monitor_figures
from services.gateway.replies import ReplyWaiter
from shared import subjects
from shared.bus import publish_event
from shared.messages import (
    MAX_COMMENT_CHARS,
    ExplainRequested,
    ExplanationReady,
    FeedbackReported,
    Label,
    PredictionSnapshot,
    ScoringFailed,
    TweetScored,
    TweetSubmitted,
    TweetText,
    WordContribution,
)
from shared.settings import Settings
from shared.storage import PredictionRepository

log = logging.getLogger(__name__)

MAX_TWEETS_PER_REQUEST = 64
STATIC = Path(__file__).parent / "static"
RECENT_PREDICTIONS = 10_000


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


class PredictRequest(BaseModel):
    """One tweet in `text`, or several in `texts`."""

    text: TweetText | None = None
    texts: list[TweetText] | None = Field(None, min_length=1, max_length=MAX_TWEETS_PER_REQUEST)

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (one tweet) or 'texts' (a list)")
        return self


class Prediction(BaseModel):
    id: str
    text: str
    label: Label
    probability: float = Field(description="Probability that readers take the tweet as positive.")
    threshold: float = Field(description="Decision threshold of the model (precision target).")
    model_name: str
    model_version: str
    latency_ms: float = Field(
        description="Time from submission to answer, measured by the gateway."
    )


class Predictions(BaseModel):
    predictions: list[Prediction]


class FeedbackRequest(BaseModel):
    prediction_id: str = Field(min_length=1, max_length=64)
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


class ExplainRequest(BaseModel):
    text: TweetText
    budget_ms: int = Field(1500, ge=50, le=30_000, description="Time budget of the explanation.")


class Explanation(ExplanationReady):
    """The words of the tweet with their push, and the strongest ones each way."""

    top_positive: list[WordContribution]
    top_negative: list[WordContribution]


class RecentPredictions:
    """Predictions this gateway served lately, so feedback need not wait for the store."""

    def __init__(self, size: int = RECENT_PREDICTIONS) -> None:
        self.size = size
        self._items: OrderedDict[str, PredictionSnapshot] = OrderedDict()

    def add(self, scored: TweetScored) -> None:
        self._items[scored.id] = PredictionSnapshot.of(scored)
        self._items.move_to_end(scored.id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, prediction_id: str) -> PredictionSnapshot | None:
        return self._items.get(prediction_id)


def _reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def create_app(
    settings: Settings,
    broker: NatsBroker,
    repository: PredictionRepository,
    replies: ReplyWaiter,
    alerts: AlertWatcher | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    app = FastAPI(
        title="Air Paradis sentiment API",
        version="1",
        description="Will readers take this tweet as positive or negative?",
        **fastapi_kwargs,
    )
    recent = RecentPredictions()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/monitor", include_in_schema=False)
    async def monitor_page() -> FileResponse:
        """Traffic, latency, error rate and drift, without Grafana."""
        return FileResponse(STATIC / "monitor.html")

    @app.get("/v1/monitor")
    async def monitor(
        hours: Annotated[int, Query(ge=1, le=24 * 31, description="Window, in hours.")] = 6,
        model_version: Annotated[str | None, Query(max_length=32)] = None,
    ) -> JSONResponse:
        """The key figures of the dashboards, from the same SQL (for /monitor)."""
        try:
            figures = await asyncio.to_thread(
                monitor_figures, repository.store, settings.model_name, hours, model_version
            )
        except Exception as exc:
            log.exception("monitor query failed")
            raise ApiError(503, "store_unavailable", f"ClickHouse did not answer: {exc}") from exc
        return JSONResponse(jsonable_encoder(figures))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The communication team's page."""
        return FileResponse(STATIC / "index.html")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "reason": exc.reason}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            error, reason = "malformed_json", "the body is not valid JSON in UTF-8"
        else:
            error = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
            reason = str(exc.detail)
        return JSONResponse({"error": error, "reason": reason}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(
                {"error": "malformed_json", "reason": "the body is not valid JSON in UTF-8"},
                status_code=400,
            )
        return JSONResponse({"error": "invalid_request", "reason": _reason(exc)}, status_code=422)

    async def score(text: str) -> Prediction:
        tweet = TweetSubmitted(text=text, source="gateway")
        tweet = tweet.model_copy(update={"reply_to": replies.subject_for(tweet.id)})
        answer = replies.expect(tweet.id)
        started = time.perf_counter()
        try:
            await publish_event(
                broker,
                tweet,
                subjects.TWEETS_SUBMITTED,
                msg_id=tweet.id,
                stream=subjects.STREAM_TWEETS,
            )
            result = await asyncio.wait_for(answer, timeout=settings.predict_timeout_s)
        except TimeoutError as exc:
            raise ApiError(
                504,
                "timeout",
                f"the pipeline did not answer within {settings.predict_timeout_s:g} s "
                "(is the model loaded? see /readyz)",
            ) from exc
        except Exception as exc:
            log.exception("publish failed", extra={"tweet_id": tweet.id})
            raise ApiError(503, "bus_unavailable", f"NATS did not take the tweet: {exc}") from exc
        finally:
            replies.forget(tweet.id)
        if isinstance(result, ScoringFailed):
            raise ApiError(422, "unscorable", result.reason)
        recent.add(result)
        return Prediction.model_validate(
            result.model_dump(include=set(Prediction.model_fields) - {"latency_ms"})
            | {"latency_ms": round((time.perf_counter() - started) * 1000.0, 2)}
        )

    @app.post(
        "/v1/predict",
        response_model=Prediction | Predictions,
        responses={400: {}, 422: {}, 503: {}, 504: {}},
    )
    async def predict(request: PredictRequest) -> Prediction | Predictions:
        """Score one tweet (`text`) or up to 64 (`texts`) through the pipeline."""
        if request.text is not None:
            return await score(request.text)
        assert request.texts is not None
        return Predictions(predictions=list(await asyncio.gather(*map(score, request.texts))))

    @app.post("/v1/explain", response_model=Explanation, responses={422: {}, 503: {}, 504: {}})
    async def explain(request: ExplainRequest) -> Explanation:
        """Which words pushed the tweet toward positive or negative (not stored)."""
        asked = ExplainRequested(text=request.text, budget_ms=request.budget_ms)
        try:
            reply = await broker.request(
                asked.model_dump(mode="json"),
                subjects.EXPLAIN_REQUESTED,
                timeout=request.budget_ms / 1000.0 + settings.predict_timeout_s,
            )
        except TimeoutError as exc:
            raise ApiError(504, "timeout", "no infer worker answered (see /readyz)") from exc
        except Exception as exc:
            raise ApiError(503, "bus_unavailable", f"NATS did not take the request: {exc}") from exc
        body = await reply.decode()
        if isinstance(body, dict) and "error" in body:
            reason = str(body["error"])
            if "no model loaded" in reason:
                raise ApiError(503, "model_not_ready", reason)
            raise ApiError(422, "unexplainable", reason)
        ready = ExplanationReady.model_validate(body)
        ranked = sorted(ready.words, key=lambda w: -abs(w.contribution))
        return Explanation(
            **ready.model_dump(),
            top_positive=[w for w in ranked if w.contribution > 0][:5],
            top_negative=[w for w in ranked if w.contribution < 0][:5],
        )

    @app.post("/v1/feedback", response_model=FeedbackAccepted, status_code=202)
    async def feedback(
        request: FeedbackRequest,
        wait_alert_ms: Annotated[
            int,
            Query(
                ge=0,
                le=5000,
                description="Wait this long for the alerter, to say whether the team was notified.",
            ),
        ] = 0,
    ) -> FeedbackAccepted:
        """Report a wrong prediction; three reports within five minutes email the team."""
        snapshot = recent.get(request.prediction_id)
        if snapshot is None:
            snapshot = await repository.get_prediction(request.prediction_id)
        if snapshot is None:
            raise ApiError(
                404, "unknown_prediction", f"no prediction with id {request.prediction_id!r}"
            )
        report = FeedbackReported(
            prediction_id=request.prediction_id,
            correct_label=request.correct_label,
            comment=request.comment,
            prediction=snapshot,
        )
        try:
            await publish_event(
                broker,
                report,
                subjects.FEEDBACK_REPORTED,
                msg_id=report.id,
                stream=subjects.STREAM_FEEDBACK,
            )
        except Exception as exc:
            raise ApiError(503, "bus_unavailable", f"NATS did not take the report: {exc}") from exc
        alert_id = await alerts.alert_for(report.id, wait_alert_ms / 1000.0) if alerts else None
        return FeedbackAccepted(
            id=report.id,
            prediction_id=report.prediction_id,
            team_notified=alert_id is not None,
            alert_id=alert_id,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready when NATS answers, the store answers and a model is serving."""
        checks: dict[str, Any] = {}
        try:
            checks["nats"] = {"ok": await broker.ping(timeout=1.0)}
        except Exception as exc:
            checks["nats"] = {"ok": False, "reason": str(exc)}
        try:
            checks["store"] = {"ok": await repository.ping()}
        except Exception as exc:
            checks["store"] = {"ok": False, "reason": str(exc)}
        try:
            reply = await broker.request(None, subjects.INFER_STATUS, timeout=2.0)
            status = await reply.decode()
            assert isinstance(status, dict)
            checks["model"] = {"ok": bool(status.get("ready")), **status}
        except Exception as exc:
            checks["model"] = {"ok": False, "reason": f"infer did not answer: {exc}"}
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return app
