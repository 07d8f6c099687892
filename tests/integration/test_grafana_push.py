"""`airparadis dashboards push` against a real Grafana (with the ClickHouse plugin) and a real
ClickHouse server, both in Docker: the push creates the data source, the folder and the
dashboards, a second push changes nothing, and panels queried through Grafana's API answer
with the seeded figures.

Skipped, with the reason, where no Docker engine answers (CI runs it). Grafana downloads the
plugin when it starts, so the test needs the network.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from airparadis.cli import app
from airparadis.dashboards import DATASOURCE, FOLDER_UID, render_all
from shared.drift import reference_rows, save_reference
from shared.panels import QUERIES
from shared.storage import ServerStore, apply_migrations
from tests.deploy.containers import why_no_docker

pytestmark = pytest.mark.integration

CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
# As in compose.yaml.
GRAFANA_IMAGE = "grafana/grafana:12.0.0"
PLUGIN, PLUGIN_VERSION = "grafana-clickhouse-datasource", "4.11.2"
ADMIN = ("admin", "airparadis-test")
CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, DATABASE = "airparadis", "airparadis-test", "airparadis"
MODEL, VERSION = "airparadis-sentiment", "1"
MINUTES, PER_MINUTE = 10, 30


@dataclass(frozen=True)
class Stack:
    grafana_url: str
    clickhouse_url: str  # from this machine
    clickhouse_url_for_grafana: str  # from the Grafana container
    start: datetime  # the seeded predictions are in [start, start + MINUTES)


def _wait_for_grafana(url: str, deadline_s: float = 240.0) -> None:
    """Until Grafana answers and has installed the ClickHouse plugin."""
    deadline = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            plugin = httpx.get(f"{url}/api/plugins/{PLUGIN}/settings", auth=ADMIN, timeout=5)
            if plugin.status_code == 200:
                return
            last = f"plugin settings answered {plugin.status_code}"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(2)
    raise TimeoutError(f"Grafana at {url} not ready with {PLUGIN}: {last}")


def _seed(clickhouse_url: str) -> datetime:
    """Predictions of one version, PER_MINUTE a minute for MINUTES minutes, and a reference
    built from the very same values (so every PSI is 0)."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    rows: list[dict[str, Any]] = []
    for i in range(MINUTES * PER_MINUTE):
        scored_at = start + timedelta(minutes=i // PER_MINUTE, seconds=i % PER_MINUTE)
        length = 20 + i % 120
        rows.append(
            {
                "id": f"p{i}",
                "text": "x" * length,
                "source": "api",
                "label": "positive" if i % 3 else "negative",
                "probability": (i % 100) / 100,
                "threshold": 0.5,
                "model_name": MODEL,
                "model_version": VERSION,
                "submitted_at": scored_at - timedelta(milliseconds=20),
                "scored_at": scored_at,
                "latency_ms": 20.0 + i % 7,
                "batch_size": 8,
                "length": length,
                "n_words": length // 6,
                "n_urls": i % 2,
                "n_mentions": i % 3,
                "n_hashtags": 0,
                "n_emojis": i % 4,
            }
        )
    features = {
        name: [row[name] for row in rows]
        for name in ("length", "n_words", "n_urls", "n_mentions", "n_hashtags", "n_emojis")
    }
    store = ServerStore(clickhouse_url)
    try:
        apply_migrations(store, 3650)
        store.insert("predictions", rows)
        probabilities = [row["probability"] for row in rows]
        save_reference(store, reference_rows(probabilities, features, MODEL, VERSION))
    finally:
        store.close()
    return start


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if reason := why_no_docker():
        pytest.skip(reason)
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    try:
        from testcontainers.community.clickhouse import ClickHouseContainer
    except ImportError:  # older testcontainers
        from testcontainers.clickhouse import ClickHouseContainer

    with Network() as network:
        clickhouse = (
            ClickHouseContainer(
                CLICKHOUSE_IMAGE,
                port=8123,
                username=CLICKHOUSE_USER,
                password=CLICKHOUSE_PASSWORD,
                dbname=DATABASE,
            )
            .with_network(network)
            .with_network_aliases("clickhouse")
        )
        grafana = (
            DockerContainer(GRAFANA_IMAGE)
            .with_network(network)
            .with_env("GF_INSTALL_PLUGINS", f"{PLUGIN} {PLUGIN_VERSION}")
            .with_env("GF_SECURITY_ADMIN_USER", ADMIN[0])
            .with_env("GF_SECURITY_ADMIN_PASSWORD", ADMIN[1])
            .with_exposed_ports(3000)
        )
        with clickhouse, grafana:
            grafana_url = (
                f"http://{grafana.get_container_host_ip()}:{grafana.get_exposed_port(3000)}"
            )
            credentials = f"{CLICKHOUSE_USER}:{CLICKHOUSE_PASSWORD}"
            clickhouse_url = (
                f"http://{credentials}@{clickhouse.get_container_host_ip()}:"
                f"{clickhouse.get_exposed_port(8123)}/{DATABASE}"
            )
            start = _seed(clickhouse_url)
            _wait_for_grafana(grafana_url)
            in_network = f"http://{credentials}@clickhouse:8123/{DATABASE}"
            yield Stack(grafana_url, clickhouse_url, in_network, start)


def _service_account_token(grafana_url: str) -> str:
    account = httpx.post(
        f"{grafana_url}/api/serviceaccounts",
        json={"name": "airparadis-push", "role": "Admin"},
        auth=ADMIN,
        timeout=10,
    )
    account.raise_for_status()
    token = httpx.post(
        f"{grafana_url}/api/serviceaccounts/{account.json()['id']}/tokens",
        json={"name": "push"},
        auth=ADMIN,
        timeout=10,
    )
    token.raise_for_status()
    return str(token.json()["key"])


def _push(stack: Stack, token: str) -> dict[str, str]:
    result = CliRunner().invoke(
        app,
        [
            "dashboards",
            "push",
            "--grafana-url",
            stack.grafana_url,
            "--token",
            token,
            "--clickhouse-url",
            stack.clickhouse_url_for_grafana,
        ],
    )
    assert result.exit_code == 0, result.output
    return dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())


@pytest.fixture(scope="module")
def pushed(stack: Stack) -> tuple[dict[str, str], dict[str, str]]:
    """The reports of a first and a second push."""
    token = _service_account_token(stack.grafana_url)
    return _push(stack, token), _push(stack, token)


def _frontend(sql: str, values: dict[str, str | None]) -> str:
    """What Grafana's front end sends for a panel: $__conditionalAll and ${var:singlequote}
    filled (the backend fills the time macros itself)."""

    def conditional(match: re.Match[str]) -> str:
        return "1=1" if values[match.group(2)] is None else match.group(1)

    sql = re.sub(r"\$__conditionalAll\((.*?\)), \$(\w+)\)", conditional, sql)
    return re.sub(r"\$\{(\w+):singlequote\}", lambda m: f"'{values[m.group(1)]}'", sql)


def _query(stack: Stack, name: str, values: dict[str, str | None]) -> list[dict[str, Any]]:
    """The frames Grafana returns for a registered query over the seeded minutes."""
    query = QUERIES[name]
    start_ms = int(stack.start.timestamp() * 1000)
    response = httpx.post(
        f"{stack.grafana_url}/api/ds/query",
        json={
            "from": str(start_ms),
            "to": str(start_ms + MINUTES * 60_000 - 1),
            "queries": [
                {
                    "refId": "A",
                    "datasource": DATASOURCE,
                    "editorType": "sql",
                    "format": 0 if query.format == "time_series" else 1,
                    "rawSql": _frontend(query.sql, values),
                    "intervalMs": 60_000,
                    "maxDataPoints": 1000,
                }
            ],
        },
        auth=ADMIN,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"]["A"]
    assert "error" not in result, result
    frames: list[dict[str, Any]] = result["frames"]
    return frames


def test_a_first_push_creates_everything_and_a_second_changes_nothing(
    pushed: tuple[dict[str, str], dict[str, str]],
) -> None:
    first, second = pushed
    dashboards = {model["uid"] for model in render_all().values()}

    assert first == {"datasource": "created", "folder": "created"} | dict.fromkeys(
        dashboards, "created"
    )
    assert set(second.values()) == {"unchanged"}
    assert set(second) == set(first)


def test_grafana_holds_the_dashboards_as_rendered_in_the_folder(
    stack: Stack, pushed: tuple[dict[str, str], dict[str, str]]
) -> None:
    for model in render_all().values():
        stored = httpx.get(
            f"{stack.grafana_url}/api/dashboards/uid/{model['uid']}", auth=ADMIN, timeout=10
        ).json()
        assert stored["meta"]["folderUid"] == FOLDER_UID
        assert {k: v for k, v in stored["dashboard"].items() if k in model} == model
        assert stored["dashboard"]["version"] == 1  # the second push saved nothing


def test_the_data_source_reaches_clickhouse(
    stack: Stack, pushed: tuple[dict[str, str], dict[str, str]]
) -> None:
    health = httpx.get(
        f"{stack.grafana_url}/api/datasources/uid/{DATASOURCE['uid']}/health",
        auth=ADMIN,
        timeout=30,
    )

    assert health.status_code == 200, health.text
    assert health.json()["status"] == "OK"


def test_a_panel_queried_through_grafana_counts_predictions_per_minute(
    stack: Stack, pushed: tuple[dict[str, str], dict[str, str]]
) -> None:
    frames = _query(stack, "traffic_per_minute", {"model_version": None})

    values = [
        value
        for frame in frames
        for field, column in zip(frame["schema"]["fields"], frame["data"]["values"], strict=True)
        if field["name"] == "predictions_per_minute"
        for value in column
        if value is not None
    ]
    assert values == [PER_MINUTE] * MINUTES


def test_the_version_variable_and_the_psi_table_answer_through_grafana(
    stack: Stack, pushed: tuple[dict[str, str], dict[str, str]]
) -> None:
    [versions] = _query(stack, "model_versions", {})
    [psi] = _query(stack, "psi_window", {"model_name": MODEL, "model_version": VERSION})

    assert versions["data"]["values"] == [[VERSION]]
    names = [field["name"] for field in psi["schema"]["fields"]]
    table = dict(zip(names, psi["data"]["values"], strict=True))
    assert len(table["feature"]) == 7  # no oov_rate measured, so none compared
    assert max(table["psi"]) == pytest.approx(0.0, abs=1e-9)
    assert set(table["predictions"]) == {MINUTES * PER_MINUTE}
