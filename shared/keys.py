"""API keys: what a key looks like, how it is hashed and checked, its scopes, and the key ring
kept in ClickHouse (`api_keys`, infra/clickhouse/005_keys.sql).

A key is `ap_<id>_<secret>`: the id (12 hex digits) is not secret and finds the key's row; the
secret is 256 random bits (secrets.token_urlsafe). Only the SHA-256 of the whole key is stored.
A slow password hash (bcrypt, scrypt) protects low-entropy passwords against guessing; a
256-bit random key cannot be guessed, so one SHA-256 is enough and keeps the per-request
check cheap. The stored hash is compared in constant time.

A name names one key for good (a revoked key's name is not given again), so the `key_name`
stored with predictions and reports always means one key. Revoking inserts the key's row again
with `revoked_at` set; reads take the earliest revocation, so nothing un-revokes a key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from shared.messages import KEY_NAME_PATTERN
from shared.storage import Store, as_utc

Scope = Literal["predict", "feedback", "monitor", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
SCOPE_HELP: dict[Scope, str] = {
    "predict": "POST /v1/predict, POST /v1/explain, GET /v1/predictions/{id}",
    "feedback": "POST /v1/feedback",
    "monitor": "GET /v1/monitor, GET /v1/limits",
    "admin": "GET, POST /v1/keys and DELETE /v1/keys/{name_or_id}",
}

KEY_PREFIX = "ap"
KEY_ID_HEX = 12
SECRET_BYTES = 32
_NAME = re.compile(KEY_NAME_PATTERN)
# ap_<12 hex>_<token_urlsafe(32): 43 characters of A-Z a-z 0-9 - _>
_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{KEY_ID_HEX}}})_([A-Za-z0-9_-]{{43}})\Z")
TABLE = "api_keys"


class ApiKeyError(ValueError):
    """A key operation a user can mend: a bad name or scope, a name in use, no such key."""


class UnknownKey(ApiKeyError):
    """No key has this name or id."""


class NameTaken(ApiKeyError):
    """A key (active or revoked) already has this name."""


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: everything but the key itself."""

    key_id: str
    name: str
    scopes: tuple[Scope, ...]
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: Scope) -> bool:
        """Scopes are independent: `admin` manages keys, it does not score tweets."""
        return scope in self.scopes

    def describe(self) -> dict[str, Any]:
        """The key for listings (the hash left out: it identifies nothing a person needs)."""
        return {
            "id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `secret` is shown once, never stored."""

    secret: str
    key: ApiKey


def hash_key(presented: str) -> str:
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def matches(presented: str, key_hash: str) -> bool:
    """Whether a presented key is the one whose hash is stored (constant-time comparison)."""
    return hmac.compare_digest(hash_key(presented), key_hash)


def key_id_of(presented: str) -> str | None:
    """The id part of a well-formed key, else None (nothing to look up)."""
    found = _KEY.match(presented)
    return found.group(1) if found else None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ApiKeyError(
            f"invalid key name {name!r}: 1 to 64 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit"
        )
    return name


def check_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes in their canonical order, each once; ApiKeyError for an unknown one or none."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {unknown}; choose from {list(SCOPES)}")
    if not given:
        raise ApiKeyError(f"a key needs at least one scope: {list(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in given)


def new_key(name: str, scopes: Iterable[str], now: datetime | None = None) -> IssuedKey:
    """A fresh random key for `name` with `scopes` (not stored yet)."""
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(
        key_id=key_id,
        name=check_name(name),
        scopes=check_scopes(scopes),
        key_hash=hash_key(secret),
        created_at=as_utc(now or datetime.now(UTC)),
    )
    return IssuedKey(secret, key)


def key_row(key: ApiKey) -> dict[str, Any]:
    """An `api_keys` row."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "key_hash": key.key_hash,
        "scopes": list(key.scopes),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "updated_at": key.revoked_at or key.created_at,
    }


# One row per key: a revocation is the key's row inserted again with revoked_at set, and the
# earliest revocation wins (min ignores NULL), merged or not. The filter runs on the stored
# rows (inside), where the names are the columns', not the aggregates'.
_KEYS = f"""
SELECT key_id, any(name) AS name, any(key_hash) AS key_hash, any(scopes) AS scopes,
       min(created_at) AS created_at, min(revoked_at) AS revoked_at
FROM (SELECT * FROM {TABLE} {{where}})
GROUP BY key_id
ORDER BY created_at, key_id
"""
_KEY_ROWS = f"""
SELECT key_id, name, key_hash, scopes, created_at, revoked_at
FROM {TABLE} WHERE key_id = {{key_id:String}}
"""
_LAST_USED = """
SELECT key_name, max(at) AS last_used_at FROM (
    SELECT key_name, max(submitted_at) AS at FROM predictions
    WHERE key_name IN {names:Array(String)} GROUP BY key_name
    UNION ALL
    SELECT key_name, max(reported_at) AS at FROM feedback
    WHERE key_name IN {names:Array(String)} GROUP BY key_name
) GROUP BY key_name
"""


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        scopes=tuple(s for s in SCOPES if s in row["scopes"]),
        key_hash=row["key_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class KeyRing:
    """The API keys in the store. Calls block (run them in a worker thread from async code).

    No cache: `authenticate` reads the key's row on every call, so a revoked key is refused
    from the next request on, by every gateway."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _select(self, where: str = "", parameters: dict[str, Any] | None = None) -> list[ApiKey]:
        rows = self._store.query(_KEYS.format(where=where), parameters or {})
        return [_key(row) for row in rows]

    def find(self, key_id: str) -> ApiKey | None:
        """The key with this id. On every request: one plain read of its rows (one, or two
        once revoked), merged here; the cheapest query chDB answers (see README, Security)."""
        rows = self._store.query(_KEY_ROWS, {"key_id": key_id})
        if not rows:
            return None
        revocations = [row["revoked_at"] for row in rows if row["revoked_at"] is not None]
        return replace(_key(rows[0]), revoked_at=min(revocations) if revocations else None)

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key `presented` is, or None (malformed, unknown, wrong secret, revoked)."""
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        key = self.find(key_id)
        if key is None or not key.active or not matches(presented, key.key_hash):
            return None
        return key

    def list(self, *, last_used: bool = True) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first; with when each last scored a tweet
        or sent a report (from the key_name of predictions and feedback)."""
        keys = self._select()
        if not last_used or not keys:
            return keys
        rows = self._store.query(_LAST_USED, {"names": sorted({k.name for k in keys})})
        used = {row["key_name"]: row["last_used_at"] for row in rows}
        return [replace(key, last_used_at=used.get(key.name)) for key in keys]

    def create(self, name: str, scopes: Sequence[str], now: datetime | None = None) -> IssuedKey:
        """A new key, stored; ApiKeyError when the name was ever used."""
        check_name(name)
        taken = self._select("WHERE name = {name:String}", {"name": name})
        if taken:
            state = "revoked" if not taken[0].active else "active"
            raise NameTaken(
                f"the name {name!r} belongs to key {taken[0].key_id} ({state}); a name names "
                f"one key for good: choose another (e.g. {name}-2)"
            )
        issued = new_key(name, scopes, now)
        while self.find(issued.key.key_id) is not None:  # 48-bit ids: next to never
            issued = new_key(name, scopes, now)
        self._store.insert(TABLE, [key_row(issued.key)])
        return issued

    def revoke(self, name_or_id: str, now: datetime | None = None) -> ApiKey:
        """Revoke the key with this name or id, from the next request on; the key as revoked.
        ApiKeyError when there is no such key; revoking a revoked key changes nothing."""
        found = self._select(
            "WHERE key_id = {value:String} OR name = {value:String}", {"value": name_or_id}
        )
        if not found:
            raise UnknownKey(f"no API key named or with id {name_or_id!r} (see `keys list`)")
        key = found[0]
        if not key.active:
            return key
        revoked = replace(key, revoked_at=as_utc(now or datetime.now(UTC)))
        self._store.insert(TABLE, [key_row(revoked)])
        return revoked
