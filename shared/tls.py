"""TLS on the client side: the context a process verifies the NATS and ClickHouse servers with.

Compose makes its own certificate authority (`airparadis tls init`, run by the `tls`
one-shot) and hands every service its certificate, `/tls/ca.crt`; the settings
`nats_tls_ca` and `clickhouse_tls_ca` point there. A client then accepts only a server whose
certificate that authority signed for the host name it dialled.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsConfigError(ValueError):
    """A CA file that is missing, unreadable or not a PEM certificate: said once, at start."""


def client_context(ca_file: Path, setting: str) -> ssl.SSLContext:
    """A TLS 1.2+ client context that trusts only the certificates `ca_file` signed and checks
    the server's host name; `setting` names the setting the path came from, for the error."""
    try:
        pem = ca_file.read_text(encoding="ascii")
    except OSError as error:
        raise TlsConfigError(
            f"{setting}={ca_file}: cannot read the CA certificate ({error.strerror or error})"
        ) from error
    except UnicodeDecodeError as error:
        raise TlsConfigError(f"{setting}={ca_file}: not a PEM certificate") from error
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cadata=pem)
    except ssl.SSLError as error:
        raise TlsConfigError(
            f"{setting}={ca_file}: not a PEM certificate ({error.reason or error})"
        ) from error
    return context
