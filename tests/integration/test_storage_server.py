"""The storage contract on a real ClickHouse server, started in Docker by testcontainers.

Skipped, with the reason, where no Docker engine answers (CI runs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

# A sibling module: pytest puts tests/integration on sys.path (no __init__.py in tests/).
from storage_contract import StoreContract

from shared.storage import ServerStore, Store
from tests.deploy.containers import why_no_docker

pytestmark = pytest.mark.integration

CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
HTTP_PORT = 8123


@pytest.fixture(scope="module")
def clickhouse_server() -> Iterator[str]:
    """Base URL (no database) of a ClickHouse server for this module."""
    if reason := why_no_docker():
        pytest.skip(reason)
    try:
        from testcontainers.community.clickhouse import ClickHouseContainer
    except ImportError:  # older testcontainers
        from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer(CLICKHOUSE_IMAGE, port=HTTP_PORT) as server:
        host = server.get_container_host_ip()
        port = server.get_exposed_port(HTTP_PORT)
        yield f"http://{server.username}:{server.password}@{host}:{port}"


class TestServerStore(StoreContract):
    @pytest.fixture
    def make_store(self, clickhouse_server: str, database_name: str) -> Callable[[], Store]:
        return lambda: ServerStore(f"{clickhouse_server}/{database_name}")
