"""The clients' side of TLS (shared/tls.py): a process checks NATS and ClickHouse with the CA its
settings name, and a CA file that is not there stops it at start, naming the setting.

The compose stack's NATS over TLS is proved in tests/deploy (the whole pipeline against a
nats-server with the rendered config and `airparadis tls init` certificates); a ClickHouse server
over HTTPS runs there with Docker. Here, without Docker, the store's HTTPS client meets a real
TLS server on 127.0.0.1: the handshake must succeed with the stack's authority (the request
arrives) and fail with another one (nothing arrives).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airparadis.embedded import EXIT_CONFIG
from airparadis.tls import SERVER_CERT, SERVER_KEY, ensure_certificates
from shared.nats_server import free_port
from shared.storage import ServerStore, StorageError
from shared.tls import TlsConfigError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Requests(BaseHTTPRequestHandler):
    """Counts what arrives after the handshake; answers as a server that is not ClickHouse."""

    seen: list[str]

    def do_GET(self) -> None:
        self._refuse()

    def do_POST(self) -> None:
        self._refuse()

    def _refuse(self) -> None:
        self.seen.append(self.path)
        body = b"Code: 516. not a ClickHouse server, only a TLS witness\n"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def https_witness(tmp_path: Path) -> Iterator[tuple[str, list[str], Path]]:
    """An HTTPS server on 127.0.0.1 with a `clickhouse` certificate of a fresh authority: its
    URL, the requests it received, and the authority's CA file."""
    tls = tmp_path / "tls"
    ensure_certificates(tls, tmp_path / "authority", ["clickhouse"], ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "clickhouse" / SERVER_CERT, tls / "clickhouse" / SERVER_KEY)
    seen: list[str] = []
    handler = type("Witness", (Requests,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"https://writer:secret@127.0.0.1:{server.server_port}/airparadis",
            seen,
            tls / "ca.crt",
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_store_reaches_an_https_server_its_ca_signed(
    https_witness: tuple[str, list[str], Path],
) -> None:
    url, seen, ca = https_witness
    with pytest.raises(StorageError) as failed:
        ServerStore(url, ca_file=ca, connect_timeout_s=3)
    # Past the handshake: the request arrived, and what failed is the (fake) server's answer.
    assert seen, "the request never arrived"
    assert "certificate" not in str(failed.value).lower()
    assert "secret" not in str(failed.value)  # credentials never in an error


def test_the_store_refuses_a_server_another_authority_signed(
    https_witness: tuple[str, list[str], Path], tmp_path: Path
) -> None:
    url, seen, _ = https_witness
    stranger = tmp_path / "stranger"
    ensure_certificates(stranger, tmp_path / "stranger-authority", ["clickhouse"], ["127.0.0.1"])
    with pytest.raises(StorageError, match=r"(?i)certificate verify failed"):
        ServerStore(url, ca_file=stranger / "ca.crt", connect_timeout_s=3)
    assert seen == []  # nothing, credentials included, went to that server


def test_the_store_names_the_setting_of_a_missing_ca_file(
    https_witness: tuple[str, list[str], Path], tmp_path: Path
) -> None:
    url, seen, _ = https_witness
    with pytest.raises(TlsConfigError, match=r"AIRPARADIS_CLICKHOUSE_TLS_CA=.*cannot read"):
        ServerStore(url, ca_file=tmp_path / "gone.crt", connect_timeout_s=3)
    assert seen == []


@pytest.mark.timeout(120)
def test_a_worker_without_its_ca_file_stops_at_start_naming_the_setting(tmp_path: Path) -> None:
    environment = os.environ | {
        "AIRPARADIS_HOME": str(tmp_path / "home"),
        "AIRPARADIS_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "AIRPARADIS_NATS_TLS_CA": str(tmp_path / "missing-ca.crt"),
        "AIRPARADIS_LOG_FORMAT": "json",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "airparadis", "worker", "preprocess"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert finished.returncode == EXIT_CONFIG, finished.stderr[-2000:]
    said = finished.stdout + finished.stderr
    assert f"AIRPARADIS_NATS_TLS_CA={tmp_path / 'missing-ca.crt'}" in said
    assert "Traceback" not in said
