"""Headers read the fast way are read exactly as nats-py's own parser reads them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from shared.bus import parse_plain_headers, read_headers_fast

ORIGINAL = Client._process_headers

names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":"),
    min_size=1,
    max_size=20,
)
values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def block(pairs: list[tuple[str, str]]) -> bytes:
    return b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(names, values), min_size=1, max_size=6))
async def test_plain_headers_read_as_nats_py_reads_them(pairs: list[tuple[str, str]]) -> None:
    raw = block(pairs)
    expected = await ORIGINAL(Client(), raw)
    assert parse_plain_headers(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"NATS/1.0 404 No Messages\r\n\r\n",
        b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\n\r\n",
        b"NATS/1.0\r\nFolded: a\r\n b\r\n\r\n",
        "NATS/1.0\r\nName: caf\u00e9\r\n\r\n".encode(),
        b"NATS/1.0\r\n\r\n",
    ],
)
async def test_other_forms_are_left_to_nats_py(raw: bytes) -> None:
    assert parse_plain_headers(raw) is None
    read_headers_fast()
    assert await Client._process_headers(Client(), raw) == await ORIGINAL(Client(), raw)
