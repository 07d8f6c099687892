"""GET /v1/whoami: the key a request carries. /v1/keys (scope admin): list, create and revoke
API keys, as `airparadis keys` does on the server.

The /v1/keys routes exist only when keys are required (app.py): an open API hands out no keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from services.gateway.context import GatewayDep
from services.gateway.errors import GUARDED, ApiError, responses, unavailable
from services.gateway.security import Caller, Require
from shared.keys import ApiKey, ApiKeyError, NameTaken, Scope, UnknownKey
from shared.messages import KEY_NAME_PATTERN

whoami_router = APIRouter(prefix="/v1", tags=["keys"])
router = APIRouter(prefix="/v1", tags=["keys"])

Admin = Annotated[Caller, Depends(Require("admin"))]
T = TypeVar("T")


class KeyInfo(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = Field(
        None, description="When it last scored a tweet or sent a report (from the stored rows)."
    )

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls.model_validate(key.describe())


class Identity(BaseModel):
    auth: bool = Field(description="Whether this gateway requires API keys.")
    key: KeyInfo | None = Field(None, description="The key the request carried (auth on).")


class NewKey(BaseModel):
    name: str = Field(pattern=KEY_NAME_PATTERN, description="Names one key for good.")
    scopes: list[Scope] = Field(min_length=1)


class IssuedKeyInfo(KeyInfo):
    key: str = Field(description="The API key: shown this once, only its hash is kept.")


@whoami_router.get("/whoami", response_model=Identity, responses=responses(*GUARDED, 503))
async def whoami(gw: GatewayDep, caller: Annotated[Caller, Depends(Require(None))]) -> Identity:
    """Whether keys are required, and the key this request carries (name, scopes)."""
    return Identity(
        auth=gw.settings.auth_required,
        key=KeyInfo.of(caller.key) if caller.key is not None else None,
    )


async def _on_keys(work: Callable[..., T], *args: str) -> T:
    """A key-ring call in a worker thread, its errors as HTTP answers."""
    try:
        return await asyncio.to_thread(work, *args)
    except UnknownKey as error:
        raise ApiError(404, "unknown_key", str(error)) from error
    except NameTaken as error:
        raise ApiError(409, "name_taken", str(error)) from error
    except ApiKeyError as error:
        raise ApiError(422, "invalid_request", str(error)) from error
    except Exception as error:
        raise unavailable(
            "store_unavailable", f"the API keys could not be read: {error}"
        ) from error


@router.get("/keys", response_model=list[KeyInfo], responses=responses(*GUARDED, 503))
async def list_keys(gw: GatewayDep, caller: Admin) -> list[KeyInfo]:
    """Every API key, revoked ones included (never the keys themselves)."""
    return [KeyInfo.of(key) for key in await _on_keys(gw.keys.list)]


@router.post(
    "/keys",
    response_model=IssuedKeyInfo,
    status_code=201,
    responses=responses(
        400, 409, 413, 422, *GUARDED, 503, described={409: "A key already has this name."}
    ),
)
async def create_key(request: NewKey, gw: GatewayDep, caller: Admin) -> IssuedKeyInfo:
    """A new API key with these scopes: the key is in this answer only."""
    issued = await _on_keys(lambda: gw.keys.create(request.name, request.scopes))
    return IssuedKeyInfo(key=issued.secret, **KeyInfo.of(issued.key).model_dump())


@router.delete(
    "/keys/{name_or_id}",
    response_model=KeyInfo,
    responses=responses(404, 422, *GUARDED, 503, described={404: "No key has this name or id."}),
)
async def revoke_key(
    name_or_id: Annotated[str, Path(pattern=KEY_NAME_PATTERN, description="Name or id.")],
    gw: GatewayDep,
    caller: Admin,
) -> KeyInfo:
    """Revoke a key: it is refused from the next request on."""
    return KeyInfo.of(await _on_keys(gw.keys.revoke, name_or_id))
