"""API keys: their form, hashing, checking, scopes; and the gateway's startup rule."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from airparadis.cli import app
from services.gateway.security import UnsafeBinding, startup_check
from shared.keys import (
    SCOPES,
    ApiKey,
    ApiKeyError,
    check_name,
    check_scopes,
    hash_key,
    key_id_of,
    key_row,
    matches,
    new_key,
)
from shared.settings import Settings, is_loopback


def test_a_new_key_is_long_random_and_carries_its_id() -> None:
    issued = new_key("crm", ["predict"])
    secret = issued.secret
    prefix, key_id, random_part = secret.split("_", 2)
    assert (prefix, key_id) == ("ap", issued.key.key_id)
    assert len(random_part) == 43  # 32 random bytes, URL-safe base64
    assert key_id_of(secret) == issued.key.key_id
    assert new_key("crm", ["predict"]).secret != secret


def test_only_the_sha256_of_the_key_is_stored() -> None:
    issued = new_key("crm", ["predict"])
    row = key_row(issued.key)
    assert row["key_hash"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert issued.secret not in repr(row)
    assert issued.secret.split("_", 2)[2] not in repr(issued.key)


def test_the_key_matches_its_hash_and_nothing_else_does() -> None:
    issued = new_key("crm", ["predict"])
    assert matches(issued.secret, issued.key.key_hash)
    assert not matches(
        issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B"), issued.key.key_hash
    )
    assert not matches(new_key("crm", ["predict"]).secret, issued.key.key_hash)


@given(st.text(max_size=200))
def test_any_text_is_a_key_id_or_none_never_a_crash(text: str) -> None:
    found = key_id_of(text)
    assert found is None or (len(found) == 12 and text.startswith(f"ap_{found}_"))


@pytest.mark.parametrize(
    "presented", ["", "Bearer x", "ap_", "ap_0123456789ab_short", "ap_XYZ456789abc_" + "a" * 43]
)
def test_malformed_keys_have_no_id(presented: str) -> None:
    assert key_id_of(presented) is None


def test_hashing_is_sha256_hex() -> None:
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()


def test_scopes_are_checked_deduplicated_and_ordered() -> None:
    assert check_scopes(["feedback", "predict", "feedback"]) == ("predict", "feedback")
    with pytest.raises(ApiKeyError, match="unknown scope"):
        check_scopes(["predict", "everything"])
    with pytest.raises(ApiKeyError, match="at least one scope"):
        check_scopes([])


def test_a_key_allows_only_its_own_scopes_admin_included() -> None:
    key = ApiKey("0123456789ab", "ops", ("admin",), "h", datetime.now(UTC))
    assert key.allows("admin")
    assert not any(key.allows(scope) for scope in SCOPES if scope != "admin")
    crm = ApiKey("0123456789ac", "crm", ("predict", "feedback"), "h", datetime.now(UTC))
    assert crm.allows("predict") and crm.allows("feedback") and not crm.allows("monitor")


@pytest.mark.parametrize("name", ["crm", "comms-team", "app.v2", "a" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-crm", "crm team", "crm/1", "a" * 65, "é"])
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ApiKeyError, match="1 to 64 letters"):
        check_name(name)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.5", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
        ("gateway", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.fixture
def gateway_on(settings: Settings) -> Callable[..., Settings]:
    def make(host: str, auth: str | None = None) -> Settings:
        return settings.model_copy(update={"http_host": host, "auth": auth})

    return make


def test_keys_default_to_off_on_the_loopback_and_on_elsewhere(
    gateway_on: Callable[..., Settings],
) -> None:
    assert not gateway_on("127.0.0.1").auth_required
    assert gateway_on("0.0.0.0").auth_required
    assert gateway_on("127.0.0.1", "on").auth_required


def test_an_open_api_on_the_loopback_starts_with_a_warning(
    gateway_on: Callable[..., Settings],
) -> None:
    warning = startup_check(gateway_on("127.0.0.1"))
    assert warning is not None and "open" in warning and "AIRPARADIS_AUTH=on" in warning


def test_an_open_api_off_the_loopback_is_refused_unless_insecure(
    gateway_on: Callable[..., Settings],
) -> None:
    with pytest.raises(UnsafeBinding, match="--insecure"):
        startup_check(gateway_on("0.0.0.0", "off"))
    warning = startup_check(gateway_on("0.0.0.0", "off"), insecure=True)
    assert warning is not None and "other machines" in warning


def test_keys_required_start_without_warning(gateway_on: Callable[..., Settings]) -> None:
    assert startup_check(gateway_on("0.0.0.0")) is None


@pytest.mark.parametrize("command", [["up"], ["gateway"]])
def test_up_and_gateway_refuse_an_open_api_off_the_loopback_before_starting_anything(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("AIRPARADIS_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("AIRPARADIS_AUTH", "off")
    result = CliRunner().invoke(app, [*command, "--home", str(settings.home)])
    assert result.exit_code == 2, result.output
    assert "refusing to serve an open API on 0.0.0.0:8000" in " ".join(result.output.split())
    assert not settings.home.exists()  # nothing was started
