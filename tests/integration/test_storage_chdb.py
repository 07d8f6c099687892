"""The storage contract on the embedded backend (chDB), plus what is specific to chDB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# A sibling module: pytest puts tests/integration on sys.path (no __init__.py in tests/).
from storage_contract import ALL_MIGRATIONS, StoreContract

from shared.settings import Settings
from shared.storage import (
    ChdbStore,
    StorageError,
    Store,
    apply_migrations,
    open_store,
)

pytestmark = pytest.mark.integration


class TestChdbStore(StoreContract):
    @pytest.fixture
    def make_store(self, chdb_folder: Path, database_name: str) -> Callable[[], Store]:
        return lambda: ChdbStore(chdb_folder, database_name)


def test_default_settings_open_chdb_and_migrate_a_fresh_home_folder(tmp_path: Path) -> None:
    store = open_store(Settings(home=tmp_path, clickhouse_url=None))
    try:
        assert isinstance(store, ChdbStore)
        assert store.path == tmp_path.resolve() / "clickhouse"
        assert apply_migrations(store, 365) == ALL_MIGRATIONS
        assert apply_migrations(store, 365) == []
        assert store.query("SELECT count() AS n FROM predictions") == [{"n": 0}]
    finally:
        store.close()


def test_a_second_chdb_folder_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    # chDB hosts one engine per process, bound to one folder.
    first = ChdbStore(tmp_path / "first")
    try:
        with pytest.raises(StorageError, match="one chDB folder at a time"):
            ChdbStore(tmp_path / "second")
    finally:
        first.close()
    ChdbStore(tmp_path / "second").close()
