"""`airparadis tls init`: the stack's own certificate authority and its servers' certificates.

Compose runs it as the `tls` one-shot before NATS and ClickHouse start, so that the workers
reach both over TLS and check whom they talk to (README, "Security and personal data"):

    airparadis tls init --dir /tls --authority /tls-authority \
        --server nats --server clickhouse --name localhost --name 127.0.0.1 --key-gid 101

It writes

    <authority>/ca.key, ca.crt     the authority (10 years); its key never leaves this folder
    <dir>/ca.crt                   what every client trusts (AIRPARADIS_*_TLS_CA)
    <dir>/<server>/tls.crt, .key   one certificate per server, for its name and every --name

and is safe to run at every start: what is valid is kept; a certificate that is missing, not
signed by the authority, made for other names or within 30 days of its end is made again (the
servers read it at their next restart). Keys are P-256; a server's key is readable by root and
by the group --key-gid (ClickHouse runs as 101), never by the workers.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import typer
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rich.console import Console
from rich.table import Table

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept at most; the same rule for machines costs nothing
RENEW_WITHIN_DAYS = 30
CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "tls.crt", "tls.key"
CA_COMMON_NAME = "Air Paradis platform CA"
# A server's folder name is also its host name on the compose network.
SERVER_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

Action = Literal["made", "kept", "renewed"]


class TlsInitError(Exception):
    """What stops the certificates from being made, said in one line."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one certificate."""

    what: str
    path: Path
    action: Action
    reason: str
    not_after: datetime


def ensure_certificates(
    directory: Path,
    authority: Path,
    servers: Sequence[str],
    names: Sequence[str] = (),
    key_gid: int | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """Make, keep or renew the authority and one certificate per server (see the module's
    docstring); what happened to each, authority first."""
    if not servers:
        raise TlsInitError("name at least one server (--server nats)")
    for server in servers:
        if not SERVER_NAME.fullmatch(server):
            raise TlsInitError(
                f"server {server!r}: expected a host name such as nats or clickhouse "
                "(lower-case letters, digits and dashes)"
            )
    alt_names = {server: _alt_names(server, names) for server in servers}
    now = now or datetime.now(UTC)
    ca_key, ca_cert, outcome = _authority(authority, now)
    outcomes = [outcome]
    _write(directory / CA_CERT, _pem(ca_cert), 0o644, directory_mode=0o755)
    for server in servers:
        wanted = alt_names[server]
        cert_path = directory / server / SERVER_CERT
        reason = _reason_to_issue(cert_path, ca_cert, wanted, now)
        if reason is None:
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            outcomes.append(
                Outcome(server, cert_path, "kept", "valid", current.not_valid_after_utc)
            )
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _server_certificate(server, wanted, key, ca_key, ca_cert, now)
        folder_mode = 0o750 if key_gid is not None else 0o700
        _write(
            directory / server / SERVER_KEY,
            _key_pem(key),
            0o640 if key_gid is not None else 0o600,
            directory_mode=folder_mode,
            gid=key_gid,
        )
        _write(cert_path, _pem(cert), 0o644, directory_mode=folder_mode, gid=key_gid)
        action: Action = "made" if reason == "missing" else "renewed"
        outcomes.append(Outcome(server, cert_path, action, reason, cert.not_valid_after_utc))
    return outcomes


def _authority(
    authority: Path, now: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Outcome]:
    key_path, cert_path = authority / CA_KEY, authority / CA_CERT
    if key_path.exists() and cert_path.exists():
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (ValueError, TypeError) as error:
            raise TlsInitError(
                f"{authority} holds an authority that cannot be read ({error}); move it aside "
                "to make a new one (every server certificate is then made again)"
            ) from error
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key().public_numbers() != cert.public_key().public_numbers()  # type: ignore[union-attr]
        ):
            raise TlsInitError(f"{key_path} is not the key of {cert_path}")
        if cert.not_valid_after_utc - now > timedelta(days=RENEW_WITHIN_DAYS):
            return (
                key,
                cert,
                Outcome("authority", cert_path, "kept", "valid", cert.not_valid_after_utc),
            )
        reason = f"ends on {cert.not_valid_after_utc:%Y-%m-%d}"
        action: Action = "renewed"
    elif key_path.exists() or cert_path.exists():
        raise TlsInitError(
            f"{authority} holds only one of {CA_KEY} and {CA_CERT}: restore the other, or move "
            "both aside to make a new authority"
        )
    else:
        reason, action = "missing", "made"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600, directory_mode=0o700)
    _write(cert_path, _pem(cert), 0o644, directory_mode=0o700)
    return key, cert, Outcome("authority", cert_path, action, reason, cert.not_valid_after_utc)


# A server certificate also authenticates its server as a client: the nodes of a NATS cluster
# dial each other (routes) with mutual TLS, each showing its own certificate.
SERVER_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def _alt_names(server: str, names: Sequence[str]) -> list[x509.GeneralName]:
    wanted: list[x509.GeneralName] = [x509.DNSName(server)]
    for name in names:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?", name):
                raise TlsInitError(
                    f"--name {name!r}: expected a host name or an IP address"
                ) from None
            entry = x509.DNSName(name.lower())
        if entry not in wanted:
            wanted.append(entry)
    return wanted


def _reason_to_issue(
    cert_path: Path, ca_cert: x509.Certificate, wanted: list[x509.GeneralName], now: datetime
) -> str | None:
    """Why the certificate at `cert_path` must be made (again); None when it is good."""
    if not cert_path.exists() or not cert_path.with_name(SERVER_KEY).exists():
        return "missing"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by the authority"
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "made for other names"
    if set(names) != set(wanted):
        return "made for other names"
    try:
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = set()
    if not set(SERVER_USAGES) <= usages:
        return "made before cluster routes (no client authentication)"
    if cert.not_valid_after_utc - now <= timedelta(days=RENEW_WITHIN_DAYS):
        return f"ends on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _server_certificate(
    server: str,
    names: list[x509.GeneralName],
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: datetime,
) -> x509.Certificate:
    public = key.public_key()
    not_after = min(now + timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(SERVER_USAGES)), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only (P-256 keys encipher nothing); an authority also signs certificates."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(
    path: Path, data: bytes, mode: int, *, directory_mode: int, gid: int | None = None
) -> None:
    """Write `data` whole or not at all (a temporary file renamed over), created with `mode`
    so that a key is never readable by others, even for an instant."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, directory_mode)
        if gid is not None:
            os.chown(path.parent, -1, gid)
        if path.exists() and path.read_bytes() == data:
            return
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # whatever the umask took away
        if gid is not None:
            os.chown(temporary, -1, gid)
        os.replace(temporary, path)
    except PermissionError as error:
        raise TlsInitError(
            f"cannot write {path}: {error.strerror}"
            + (" (giving a file to a group needs root)" if gid is not None else "")
        ) from error


app = typer.Typer(
    help="TLS between the services: the stack's own authority and server certificates.",
    no_args_is_help=True,
)
console = Console()


@app.command("init")
def init(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the servers and clients read their files.")
    ],
    authority: Annotated[
        Path, typer.Option("--authority", help="Where the authority's key is kept (private).")
    ],
    server: Annotated[
        list[str], typer.Option("--server", help="A server to certify, by host name (repeat).")
    ],
    name: Annotated[
        list[str] | None,
        typer.Option("--name", help="Another name or IP every server answers to (repeat)."),
    ] = None,
    key_gid: Annotated[
        int | None,
        typer.Option("--key-gid", help="Group that may read the servers' keys (ClickHouse: 101)."),
    ] = None,
) -> None:
    """Make what is missing, renew what ends within 30 days, keep the rest."""
    try:
        outcomes = ensure_certificates(directory, authority, server, name or (), key_gid)
    except TlsInitError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    table = Table("certificate", "file", "what happened", "valid until")
    for outcome in outcomes:
        why = (
            outcome.action
            if outcome.reason in ("valid", "missing")
            else (f"{outcome.action}: {outcome.reason}")
        )
        table.add_row(outcome.what, str(outcome.path), why, f"{outcome.not_after:%Y-%m-%d}")
    console.print(table)
    if any(outcome.action == "renewed" for outcome in outcomes):
        console.print(
            "Restart the servers whose certificate was renewed (and, for a new authority, "
            "every service) for them to use it: docker compose restart"
        )
