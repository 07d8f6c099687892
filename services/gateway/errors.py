"""Every error the gateway answers is JSON: {"error": <kind>, "reason": <what to fix>}, plus
the id of the tweet when the bus took it but the answer is late. One place for the error
handlers and for the statuses each route declares in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, as a stable word (timeout, invalid_request…).")
    reason: str = Field(description="What happened and what to do, for a person.")
    id: str | None = Field(
        None,
        description="The tweet's id when the bus took it: fetch it later from "
        "GET /v1/predictions/{id}.",
    )


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        *,
        id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason
        self.id = id
        self.headers = headers or {}


RETRY_AFTER_S = 5


def unavailable(error: str, reason: str) -> ApiError:
    """503: not accepted, nothing stored; the client may try again after Retry-After."""
    return ApiError(503, error, reason, headers={"Retry-After": str(RETRY_AFTER_S)})


def bus_unavailable(what: str) -> ApiError:
    """503 for a request NATS did not take: `what` says how."""
    return unavailable("bus_unavailable", f"the message bus (NATS) {what}; nothing was accepted")


_DESCRIPTIONS = {
    400: "The body is not JSON in UTF-8.",
    401: "No API key, or an unknown or revoked one (when keys are required); see WWW-Authenticate.",
    403: "The API key lacks the scope this operation needs.",
    404: "No such prediction (or it expired).",
    409: "The idempotency key was used for another request.",
    413: "The request body is over the size limit.",
    422: "The request is invalid, or its text has nothing to score; the reason says which.",
    429: "Too many requests from this API key or client address: retry after Retry-After seconds.",
    503: "Not accepted: the bus or a dependency is unavailable. Nothing was stored; retry "
    "after Retry-After seconds.",
    504: "Accepted, but not answered in time: the body carries the id to fetch later.",
}


# What any route behind an API key may answer (services/gateway/security.py).
GUARDED = (401, 403, 429)


def responses(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the error body's schema (and
    the usual description, unless `described` gives this route's own)."""
    own = described or {}
    return {
        status: {"model": ErrorBody, "description": own.get(status, _DESCRIPTIONS[status])}
        for status in statuses
    }


def error_response(
    status: int,
    error: str,
    reason: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"error": error, "reason": reason} | {k: v for k, v in extra.items() if v is not None}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.reason, headers=exc.headers, id=exc.id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # the framework's only 400: a body it could not decode
            return error_response(400, "malformed_json", "the body is not valid JSON in UTF-8")
        error = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        # Keep the headers (Allow on a 405) the framework attached.
        return error_response(exc.status_code, error, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(400, "malformed_json", "the body is not valid JSON in UTF-8")
        return error_response(422, "invalid_request", _validation_reason(exc))
