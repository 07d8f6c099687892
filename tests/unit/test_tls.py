"""`airparadis tls init` (airparadis/tls.py): the authority and the servers' certificates.

Checked with the `ssl` module a client uses, not by reading the code back: a real TLS handshake
over a socket pair proves a certificate is accepted for a name, and refused for another.
"""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from airparadis.cli import app
from airparadis.tls import (
    CA_CERT,
    CA_KEY,
    RENEW_WITHIN_DAYS,
    SERVER_CERT,
    SERVER_DAYS,
    SERVER_KEY,
    TlsInitError,
    ensure_certificates,
)
from shared.tls import TlsConfigError, client_context

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def handshake(tls: Path, server: str, dialled: str, ca: Path | None = None) -> None:
    """A TLS handshake between a server presenting `server`'s certificate and a client that
    trusts `ca` (the stack's by default) and dialled `dialled`; raises what the client sees."""
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(tls / server / SERVER_CERT, tls / server / SERVER_KEY)
    client = client_context(ca or tls / CA_CERT, "test")
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with serving.wrap_socket(right, server_side=True) as wrapped:
                wrapped.recv(1)
        except (ssl.SSLError, OSError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(left, server_hostname=dialled) as wrapped:
            wrapped.sendall(b"x")
    finally:
        left.close()
        thread.join(5)
        right.close()


def make(tmp_path: Path, **kwargs: object) -> list:  # type: ignore[type-arg]
    arguments: dict[str, object] = {
        "servers": ["nats", "clickhouse"],
        "names": ["localhost", "127.0.0.1"],
        "now": datetime.now(UTC),
    } | kwargs
    return ensure_certificates(tmp_path / "tls", tmp_path / "authority", **arguments)  # type: ignore[arg-type]


def test_a_client_trusting_the_stacks_authority_accepts_each_server_by_its_names(
    tmp_path: Path,
) -> None:
    outcomes = make(tmp_path)
    assert [(o.what, o.action) for o in outcomes] == [
        ("authority", "made"),
        ("nats", "made"),
        ("clickhouse", "made"),
    ]
    tls = tmp_path / "tls"
    for server in ("nats", "clickhouse"):
        for dialled in (server, "localhost", "127.0.0.1"):
            handshake(tls, server, dialled)


def test_a_server_is_refused_under_a_name_it_was_not_made_for(tmp_path: Path) -> None:
    make(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(tmp_path / "tls", "nats", "clickhouse")


def test_a_client_trusting_another_authority_refuses_the_servers(tmp_path: Path) -> None:
    make(tmp_path)
    other = tmp_path / "other"
    make(other)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(tmp_path / "tls", "nats", "nats", ca=other / "tls" / CA_CERT)


def test_keys_are_never_readable_by_others_and_the_authority_key_stays_apart(
    tmp_path: Path,
) -> None:
    make(tmp_path)
    tls, authority = tmp_path / "tls", tmp_path / "authority"
    assert not (tls / CA_KEY).exists()
    assert stat.S_IMODE((authority / CA_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(authority.stat().st_mode) == 0o700
    for server in ("nats", "clickhouse"):
        assert stat.S_IMODE((tls / server / SERVER_KEY).stat().st_mode) == 0o600
        assert stat.S_IMODE((tls / server).stat().st_mode) == 0o700
    assert stat.S_IMODE((tls / CA_CERT).stat().st_mode) == 0o644


def test_a_key_group_may_read_the_servers_keys(tmp_path: Path) -> None:
    gid = (tmp_path).stat().st_gid  # a group this process may give files to, root or not
    make(tmp_path, key_gid=gid)
    key = tmp_path / "tls" / "clickhouse" / SERVER_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    assert key.stat().st_gid == gid
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o750


def test_a_second_run_keeps_everything_byte_for_byte(tmp_path: Path) -> None:
    make(tmp_path)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    outcomes = make(tmp_path)
    assert {o.action for o in outcomes} == {"kept"}
    assert {p: p.read_bytes() for p in files} == before
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_certificate_near_its_end_is_renewed_and_the_others_kept(tmp_path: Path) -> None:
    make(tmp_path, now=NOW)
    nats_cert = tmp_path / "tls" / "nats" / SERVER_CERT
    old = nats_cert.read_bytes()
    later = NOW + timedelta(days=SERVER_DAYS - RENEW_WITHIN_DAYS + 1)
    outcomes = make(tmp_path, now=later)
    actions = {o.what: (o.action, o.reason) for o in outcomes}
    assert actions["authority"] == ("kept", "valid")
    assert actions["nats"][0] == "renewed" and actions["nats"][1].startswith("ends on ")
    assert nats_cert.read_bytes() != old
    renewed = x509.load_pem_x509_certificate(nats_cert.read_bytes())
    assert renewed.not_valid_after_utc > later + timedelta(days=SERVER_DAYS - 1)


def test_new_names_or_a_new_authority_make_the_server_certificates_again(
    tmp_path: Path,
) -> None:
    make(tmp_path)
    outcomes = make(tmp_path, names=["localhost", "127.0.0.1", "bus.example.org"])
    assert {o.what: o.reason for o in outcomes}["nats"] == "made for other names"
    handshake(tmp_path / "tls", "nats", "bus.example.org")
    # The authority moved aside: a new one, and every server certificate signed by it.
    (tmp_path / "authority" / CA_KEY).rename(tmp_path / "old.key")
    (tmp_path / "authority" / CA_CERT).rename(tmp_path / "old.crt")
    outcomes = make(tmp_path, names=["localhost", "127.0.0.1", "bus.example.org"])
    reasons = {o.what: (o.action, o.reason) for o in outcomes}
    assert reasons["authority"] == ("made", "missing")
    assert reasons["nats"] == ("renewed", "not signed by the authority")
    handshake(tmp_path / "tls", "clickhouse", "clickhouse")


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"servers": []}, "at least one server"),
        ({"servers": ["NATS_1"]}, "expected a host name"),
        ({"names": ["not a name"]}, "expected a host name or an IP address"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(
    tmp_path: Path, arguments: dict[str, object], reason: str
) -> None:
    with pytest.raises(TlsInitError, match=reason):
        make(tmp_path, **arguments)
    assert not (tmp_path / "authority").exists()


def test_half_an_authority_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "authority" / CA_KEY).unlink()
    with pytest.raises(TlsInitError, match="only one of"):
        make(tmp_path)


def test_the_command_prints_what_it_did_and_fails_with_a_reason(tmp_path: Path) -> None:
    runner = CliRunner()
    command = ["tls", "init", "--dir", str(tmp_path / "tls"), "--authority"]
    command += [str(tmp_path / "authority"), "--server", "nats", "--name", "127.0.0.1"]
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert " ".join(first.output.split()).count("made") == 2
    second = runner.invoke(app, command)
    assert second.exit_code == 0 and "kept" in second.output
    bad = runner.invoke(app, [*command, "--server", "Bad_Name"])
    assert bad.exit_code == 1
    assert "expected a host name" in " ".join(bad.output.split())


def test_a_missing_or_broken_ca_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match=r"AIRPARADIS_NATS_TLS_CA=.*cannot read"):
        client_context(tmp_path / "nowhere.crt", "AIRPARADIS_NATS_TLS_CA")
    broken = tmp_path / "broken.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsConfigError, match="not a PEM certificate"):
        client_context(broken, "AIRPARADIS_CLICKHOUSE_TLS_CA")
