"""Fixtures for the integration tests that use chDB.

chDB binds a process to one data folder (see shared/storage.py:ChdbStore): while a store is
open on one folder, no other folder can be opened. So every test must close the chDB stores it
opens before it ends, and the storage tests share one folder, each in a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.storage import ChdbStore


@pytest.fixture(autouse=True)
def no_chdb_store_left_open() -> Iterator[None]:
    """Closes any chDB store a test left open, and fails that test, so that one leak does not
    make every later test fail to open its own folder."""
    yield
    leaked = ChdbStore.open_stores()
    for store in leaked:
        store.close()
    if leaked:
        folders = sorted({str(store.path) for store in leaked})
        pytest.fail(f"the test left chDB stores open on {folders}; close them when done")


@pytest.fixture(scope="session")
def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chDB data folder the storage tests share."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def database_name() -> str:
    """A database name no other test uses."""
    return f"test_{uuid.uuid4().hex[:12]}"
