"""Hypothesis strategies for what may arrive on the bus: raw bytes, JSON objects with the
field names of the real messages holding values of any type, and nested JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st


def _nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)


def payloads(keys: Sequence[str]) -> st.SearchStrategy[bytes]:
    """Payloads a worker must settle: valid, almost valid, or nonsense."""
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=300),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    )
    return st.one_of(
        st.binary(max_size=3000),
        st.text(max_size=500).map(str.encode),
        st.dictionaries(st.sampled_from(sorted(keys)), values, max_size=8).map(
            lambda d: json.dumps(d).encode()
        ),
        st.recursive(st.none() | st.integers() | st.text(max_size=10), _nest, max_leaves=40).map(
            lambda v: json.dumps(v).encode()
        ),
    )
