"""Who may call the API, and how often: the API key a request carries, its scopes, and the rate
limits per key and per client address.

Each route says what it needs as a dependency, `caller: Annotated[Caller, Depends(Require(
"predict"))]`, which, in order: counts the request against its client address's bucket (429),
then, when keys are required (`Settings.auth_required`), reads the key from `Authorization:
Bearer <key>` or `X-API-Key` (401 when missing, unknown or revoked), checks its scope (403) and
counts the request against the key's bucket (429). The key is looked up in the store on every
request (shared/keys.py): a revoked key is refused from the next request on.

`startup_check` is what `airparadis up` and `airparadis gateway` ask before serving: an open
API is allowed on the loopback (with a warning), elsewhere only with --insecure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute

from services.gateway.context import Gateway, GatewayDep
from services.gateway.errors import ApiError, unavailable
from services.gateway.limits import LimitName, RateLimited, Who, retry_after_header
from shared.keys import SCOPE_HELP, ApiKey, Scope
from shared.settings import Settings

log = logging.getLogger(__name__)

REALM = "airparadis"
API_KEY_HEADER = "X-API-Key"


class UnsafeBinding(RuntimeError):
    """The gateway would serve an open API to other machines."""


def startup_check(settings: Settings, insecure: bool = False) -> str | None:
    """None when API keys are required; the warning to show when the API runs open; raises
    UnsafeBinding when it would run open on a non-loopback address without --insecure."""
    if settings.auth_required:
        return None
    where = f"{settings.http_host}:{settings.http_port}"
    if settings.gateway_on_loopback:
        return (
            f"the API on {where} is open, without API keys (AIRPARADIS_AUTH=off, the default on "
            "the loopback): anyone on this machine may score, explain and report. Set "
            "AIRPARADIS_AUTH=on to require keys (`airparadis keys create`)."
        )
    if not insecure:
        raise UnsafeBinding(
            f"refusing to serve an open API on {where}, which other machines can reach: "
            "keep AIRPARADIS_AUTH on (the default off the loopback) and create keys with "
            "`airparadis keys create`, bind to 127.0.0.1, or pass --insecure if a proxy in "
            "front checks who calls"
        )
    return (
        f"the API on {where} is open to other machines, without API keys (--insecure): "
        "anyone who reaches it may score, explain and report"
    )


@dataclass(frozen=True)
class Caller:
    """Who made a request: its client address, and its key (None when keys are off)."""

    address: str
    key: ApiKey | None

    @property
    def key_name(self) -> str | None:
        return self.key.name if self.key is not None else None


def presented_key(request: Request) -> str | None:
    """The key in `Authorization: Bearer <key>`, else in `X-API-Key`, else None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get(API_KEY_HEADER, "").strip() or None


def client_address(request: Request) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For already applied by uvicorn)."""
    return request.client.host if request.client is not None else "unknown"


def unauthorized(error: str, reason: str) -> ApiError:
    challenge = f'Bearer realm="{REALM}"'
    if error == "invalid_key":
        challenge += ', error="invalid_token"'
    return ApiError(401, error, reason, headers={"WWW-Authenticate": challenge})


def forbidden(key: ApiKey, scope: Scope) -> ApiError:
    return ApiError(
        403,
        "insufficient_scope",
        f"the key {key.name!r} has the scope(s) {', '.join(key.scopes)}; this needs "
        f"{scope!r} ({SCOPE_HELP[scope]}): ask an admin for a key with it",
        headers={
            "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
            f'scope="{scope}"'
        },
    )


_WHAT = {"api": "requests", "feedback": "reports"}
_WHO = {"key": "this API key", "address": "this client address"}


def too_many(limited: RateLimited) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"too many {_WHAT[limited.limit]} from {_WHO[limited.who]} (at most "
        f"{limited.rule.describe()}); retry in {limited.retry_after_s:.1f} s",
        headers={"Retry-After": retry_after_header(limited.retry_after_s)},
    )


class Require:
    """The dependency of a route: a caller allowed `scope` (any valid key when None), within
    the `limit` rate (api or feedback)."""

    def __init__(self, scope: Scope | None, limit: LimitName = "api") -> None:
        self.scope = scope
        self.limit = limit

    def _count(self, gw: Gateway, who: Who, identity: str) -> None:
        try:
            gw.limiter.take(self.limit, who, identity)
        except RateLimited as limited:
            raise too_many(limited) from None

    async def __call__(self, request: Request, gw: GatewayDep) -> Caller:
        address = client_address(request)
        self._count(gw, "address", address)
        if not gw.settings.auth_required:
            return Caller(address, None)
        presented = presented_key(request)
        if presented is None:
            raise unauthorized(
                "missing_key",
                "this API needs a key: send it as 'Authorization: Bearer <key>' (or "
                f"'{API_KEY_HEADER}: <key>'); an admin makes one with `airparadis keys create`",
            )
        try:
            key = await asyncio.to_thread(gw.keys.authenticate, presented)
        except Exception as error:
            log.exception("API key lookup failed")
            raise unavailable(
                "store_unavailable", f"the API keys could not be read: {error}"
            ) from error
        if key is None:
            raise unauthorized("invalid_key", "this API key is unknown or was revoked")
        if self.scope is not None and not key.allows(self.scope):
            raise forbidden(key, self.scope)
        self._count(gw, "key", key.name)
        return Caller(address, key)


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
}


def document_security(openapi: dict[str, Any], routers: Iterable[APIRouter]) -> dict[str, Any]:
    """The OpenAPI document with the key requirement of each protected operation of these
    routers: only when keys are required, so that the document describes the API as it
    answers."""
    openapi.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    routes = [route for router in routers for route in router.routes]
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        required = [d.call for d in route.dependant.dependencies if isinstance(d.call, Require)]
        if not required:
            continue
        scope = required[0].scope
        for method in route.methods or ():
            operation = openapi["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            needs = f"an API key with the scope `{scope}`" if scope else "any valid API key"
            operation["description"] = (
                operation.get("description", "") + f"\n\nNeeds {needs}."
            ).strip()
    return openapi
