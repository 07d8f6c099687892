"""The storage contract on the first replica of a ClickHouse cluster (Keeper and two replicas,
as compose's `cluster` profile runs them), the migrations applied ON CLUSTER.

Skipped, with the reason, where no Docker engine answers (GitHub Actions runs it, in the
`containers` job).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

# A sibling module: pytest puts tests/integration on sys.path (no __init__.py in tests/).
from storage_contract import StoreContract

from shared.storage import ServerStore, Store
from tests.deploy.containers import CLUSTER, ClickHouseCluster, clickhouse_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseCluster]:
    with clickhouse_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


class TestClusterStore(StoreContract):
    cluster = CLUSTER

    @pytest.fixture
    def make_store(self, replicas: ClickHouseCluster, database_name: str) -> Callable[[], Store]:
        url = replicas.url("clickhouse", "admin", database_name)
        return lambda: ServerStore(url, ca_file=replicas.ca_file)
