"""Reading drift references back, for tests: the shares of reference rows, and whether the
store holds a version's reference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.drift import REFERENCE_TABLE
from shared.storage import Store


def reference_shares(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Feature -> shares by bin, from reference rows (as built or as read back)."""
    shares: dict[str, dict[int, float]] = {}
    for row in rows:
        shares.setdefault(row["feature"], {})[int(row["bin"])] = float(row["share"])
    return {name: [by_bin[i] for i in sorted(by_bin)] for name, by_bin in shares.items()}


def has_reference(store: Store, model_name: str, model_version: str) -> bool:
    """Whether the store holds a reference for this version (drift can be computed)."""
    rows = store.query(
        f"SELECT count() AS n FROM {REFERENCE_TABLE} FINAL"
        " WHERE model_name = {model_name:String} AND model_version = {model_version:String}",
        {"model_name": model_name, "model_version": model_version},
    )
    return bool(rows[0]["n"])
