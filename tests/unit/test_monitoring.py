"""Monitoring logic without a database: PSI, reference rows, Grafana's macros, the dashboards'
JSON (rendered from the query registry, and complete enough for Grafana), the push payloads
and the replay script's drifts."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airparadis.dashboards import (
    DASHBOARDS_DIR,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    dashboard_text,
    datasource_model,
    outdated_files,
    render_all,
)
from shared.drift import (
    DRIFT_FEATURES,
    FEATURES_BY_NAME,
    PSI_ALERT,
    PSI_WARN,
    bin_shares,
    psi,
    reference_rows,
    text_feature_columns,
)
from shared.grafana_sql import MacroError, TimeWindow, auto_interval_s, expand
from shared.panels import QUERIES
from tests.drift import reference_shares

ROOT = Path(__file__).resolve().parents[2]
WINDOW = TimeWindow(
    datetime(2026, 3, 1, 10, 0, 0, 250_000, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 0, 0, 999_000, tzinfo=UTC),
    interval_s=300,
)
SINCE_S, UNTIL_S = 1772359200, 1772366400
SINCE_MS, UNTIL_MS = 1772359200250, 1772366400999


# --- PSI ---


def test_psi_of_a_distribution_against_itself_is_zero() -> None:
    shares = [0.1, 0.2, 0.3, 0.4]

    assert psi(shares, shares) == 0.0


def test_psi_sums_share_difference_times_log_ratio() -> None:
    expected, actual = [0.5, 0.5], [0.8, 0.2]

    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert by_hand > PSI_ALERT


def test_an_empty_bin_counts_as_epsilon_instead_of_an_infinite_psi() -> None:
    value = psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5], epsilon=1e-4)

    assert math.isfinite(value)
    assert value == pytest.approx(2 * (0.5 - 1e-4) * math.log(0.5 / 1e-4))


def test_psi_refuses_shares_of_different_bins() -> None:
    with pytest.raises(ValueError, match="2 expected shares but 3"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


# --- Bins and reference rows ---


@pytest.mark.parametrize(
    ("feature", "value", "expected_bin"),
    [
        ("probability", 0.0, 0),
        ("probability", 0.1, 1),
        ("probability", 0.95, 9),
        ("probability", 1.0, 9),
        ("length", 19, 0),
        ("length", 20, 1),
        ("length", 279, 13),
        ("length", 280, 14),
        ("length", 1000, 14),
        ("n_urls", 0, 0),
        ("n_urls", 2, 2),
        ("n_urls", 7, 3),
        ("oov_rate", 0.0, 0),
        ("oov_rate", 0.9, 5),
        ("n_words", -1, 0),
    ],
)
def test_a_value_falls_in_the_bin_whose_lower_edge_it_reaches(
    feature: str, value: float, expected_bin: int
) -> None:
    assert FEATURES_BY_NAME[feature].bin_of(value) == expected_bin


def test_probability_has_ten_equal_bins_and_counts_have_zero_to_three_or_more() -> None:
    probability = FEATURES_BY_NAME["probability"]
    assert probability.lowers == pytest.approx([i / 10 for i in range(10)])
    assert probability.uppers[-1] == 1.0
    assert FEATURES_BY_NAME["n_hashtags"].lowers == (0, 1, 2, 3)
    assert FEATURES_BY_NAME["n_hashtags"].uppers[-1] == math.inf


def test_bin_shares_sum_to_one() -> None:
    shares = bin_shares([0.05, 0.15, 0.16, 0.99], FEATURES_BY_NAME["probability"])

    assert shares[0] == 0.25
    assert shares[1] == 0.5
    assert shares[9] == 0.25
    assert sum(shares) == pytest.approx(1.0)


def _validation_set(n: int = 500) -> tuple[list[float], dict[str, list[float]]]:
    rng = random.Random(3)
    probabilities = [rng.random() for _ in range(n)]
    texts = [
        "great flight @AirParadis #happy https://t.co/x 😀" if i % 3 else "late again, awful"
        for i in range(n)
    ]
    return probabilities, text_feature_columns(texts)


def test_reference_rows_hold_one_row_per_feature_and_bin_with_shares_summing_to_one() -> None:
    probabilities, features = _validation_set()
    created = datetime(2026, 3, 1, tzinfo=UTC)

    rows = reference_rows(probabilities, features, "airparadis-sentiment", "7", created)

    by_feature: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_feature.setdefault(row["feature"], []).append(row)
    # No oov_rate in the frame: no reference for it.
    assert set(by_feature) == {f.name for f in DRIFT_FEATURES} - {"oov_rate"}
    for name, feature_rows in by_feature.items():
        feature = FEATURES_BY_NAME[name]
        assert [r["bin"] for r in feature_rows] == list(range(len(feature.lowers)))
        assert [r["lower"] for r in feature_rows] == [float(x) for x in feature.lowers]
        assert [r["upper"] for r in feature_rows] == [float(x) for x in feature.uppers]
        assert sum(r["share"] for r in feature_rows) == pytest.approx(1.0)
        assert {r["observations"] for r in feature_rows} == {500}
    assert {(r["model_name"], r["model_version"], r["created_at"]) for r in rows} == {
        ("airparadis-sentiment", "7", created)
    }
    assert len({(r["feature"], r["bin"]) for r in rows}) == len(rows)


def test_oov_rate_gets_a_reference_from_its_measured_values_only() -> None:
    probabilities, features = _validation_set(4)
    features["oov_rate"] = [0.0, None, float("nan"), 0.25]  # type: ignore[list-item]

    rows = reference_rows(probabilities, features, "m", "1")

    oov = [r for r in rows if r["feature"] == "oov_rate"]
    assert {r["observations"] for r in oov} == {2}
    assert reference_shares(oov)["oov_rate"] == [0.5, 0, 0, 0.5, 0, 0]


def test_reference_shares_reads_rows_back_per_feature_in_bin_order() -> None:
    rows = [
        {"feature": "n_urls", "bin": 1, "share": 0.3},
        {"feature": "n_urls", "bin": 0, "share": 0.7},
    ]

    assert reference_shares(rows) == {"n_urls": [0.7, 0.3]}


def test_text_feature_columns_count_as_the_preprocess_worker_does() -> None:
    columns = text_feature_columns(["Thanks @AirParadis! #flight https://airparadis.com 😀😀"])

    assert columns["n_mentions"] == [1.0]
    assert columns["n_hashtags"] == [1.0]
    assert columns["n_urls"] == [1.0]
    assert columns["n_emojis"] == [2.0]


# --- Grafana's macros ---


def test_time_macros_expand_as_the_clickhouse_data_source_expands_them() -> None:
    sql = (
        "SELECT $__timeInterval(scored_at) AS t, count() * 60 / $__interval_s FROM p "
        "WHERE $__timeFilter(scored_at) AND $__timeFilter_ms(scored_at) "
        "AND a >= $__fromTime AND b <= $__toTime AND c >= $__fromTime_ms AND d <= $__toTime_ms"
    )

    expanded, parameters = expand(sql, WINDOW)

    assert expanded == (
        "SELECT toStartOfInterval(toDateTime(scored_at), INTERVAL 300 second) AS t, "
        "count() * 60 / 300 FROM p "
        f"WHERE scored_at >= toDateTime({SINCE_S}) AND scored_at <= toDateTime({UNTIL_S}) "
        f"AND scored_at >= fromUnixTimestamp64Milli({SINCE_MS}) "
        f"AND scored_at <= fromUnixTimestamp64Milli({UNTIL_MS}) "
        f"AND a >= toDateTime({SINCE_S}) AND b <= toDateTime({UNTIL_S}) "
        f"AND c >= fromUnixTimestamp64Milli({SINCE_MS}) "
        f"AND d <= fromUnixTimestamp64Milli({UNTIL_MS})"
    )
    assert parameters == {}


def test_conditional_all_keeps_the_condition_for_one_version_and_drops_it_for_all() -> None:
    sql = "WHERE $__conditionalAll(model_version IN (${model_version:singlequote}), $model_version)"

    one, one_parameters = expand(sql, WINDOW, {"model_version": "3"})
    every, every_parameters = expand(sql, WINDOW, {"model_version": None})

    assert one == "WHERE model_version IN ({model_version:String})"
    assert one_parameters == {"model_version": "3"}
    assert every == "WHERE 1=1"
    assert every_parameters == {}


def test_a_variable_value_travels_as_a_parameter_never_inside_the_sql() -> None:
    hostile = "3') OR 1=1 --"

    sql, parameters = expand(
        "WHERE v = ${model_version:singlequote}", WINDOW, {"model_version": hostile}
    )

    assert hostile not in sql
    assert parameters == {"model_version": hostile}


@pytest.mark.parametrize(
    ("sql", "variables", "reason"),
    [
        ("WHERE $__unknownMacro(x)", {}, "unknown macro"),
        ("WHERE $__timeFilter(a, b)", {}, "takes one argument"),
        ("WHERE $__timeFilter(a", {}, "unclosed"),
        ("WHERE v = ${model_version:singlequote}", {}, "needs a value"),
        ("WHERE v = ${model_version}", {"model_version": "3"}, "singlequote"),
        ("WHERE v = $model_version", {"model_version": "3"}, "outside"),
        ("WHERE $__conditionalAll(x = 1, $other)", {}, "has no value"),
    ],
)
def test_a_macro_or_variable_the_expander_cannot_fill_is_an_error(
    sql: str, variables: dict[str, str | None], reason: str
) -> None:
    with pytest.raises(MacroError, match=reason):
        expand(sql, WINDOW, variables)


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_registered_query_expands_completely(name: str) -> None:
    variables: dict[str, str | None] = {"model_name": "m", "model_version": "3"}

    sql, parameters = expand(QUERIES[name].sql, WINDOW, variables)

    assert "$" not in sql
    assert set(parameters) <= QUERIES[name].variables
    assert all(f"{{{p}:String}}" in sql for p in parameters)


def test_auto_interval_keeps_buckets_round_and_at_least_a_minute() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)

    assert auto_interval_s(start, start.replace(hour=1)) == 60
    assert auto_interval_s(start, start.replace(day=2)) == 900
    assert auto_interval_s(start, start.replace(day=8)) == 7200
    assert auto_interval_s(start, start) == 60


def test_a_time_window_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        TimeWindow(WINDOW.until, WINDOW.since)


# --- The dashboards' JSON ---


def _committed() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def test_committed_dashboards_are_the_ones_the_query_registry_renders() -> None:
    # If this fails: python -m airparadis.dashboards render
    assert outdated_files() == []
    assert set(_committed()) == set(render_all())
    for name, model in render_all().items():
        assert (DASHBOARDS_DIR / name).read_text(encoding="utf-8") == dashboard_text(model)


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, model in _committed().items() for panel in model["panels"]]


@pytest.mark.parametrize("name", sorted(render_all()))
def test_each_dashboard_has_what_grafana_needs_to_load_it(name: str) -> None:
    model = _committed()[name]

    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    assert re.fullmatch(r"[a-z0-9-]{1,40}", model["uid"])
    assert model["title"]
    assert "id" not in model
    assert model["time"]["to"] == "now"
    assert re.fullmatch(r"now-\d+[mhd]", model["time"]["from"])
    assert model["refresh"] in model["timepicker"]["refresh_intervals"]
    ids = [panel["id"] for panel in model["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24
        assert grid["h"] > 0 and grid["y"] >= 0
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered


def test_each_dashboard_has_a_model_version_variable_over_the_predictions() -> None:
    for name, model in _committed().items():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        version = variables["model_version"]
        assert version["type"] == "query", name
        assert version["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
        assert "FROM predictions" in version["query"]
        assert version["definition"] == version["query"]
        assert version["refresh"] == 2


def test_every_panel_queries_clickhouse_with_registered_sql() -> None:
    registered = {query.sql: query for query in QUERIES.values()}
    for name, panel in _panels():
        assert panel["type"] in {"timeseries", "table"}, name
        assert panel["title"] and panel["description"]
        datasource = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
        assert panel["datasource"] == datasource
        [target] = panel["targets"]
        assert target["datasource"] == datasource
        assert target["refId"] == "A"
        assert target["editorType"] == "sql"
        query = registered[target["rawSql"]]
        assert target["format"] == (0 if query.format == "time_series" else 1)
        if panel["type"] == "timeseries":
            assert target["format"] == 0
            assert target["rawSql"].startswith(("SELECT\n    $__timeInterval", "WITH"))


def test_every_query_but_the_variables_is_on_a_panel() -> None:
    on_panels = {panel["targets"][0]["rawSql"] for _, panel in _panels()}
    variables = {"model_versions", "model_names", "model_versions_of_model"}

    assert {n for n, q in QUERIES.items() if q.sql not in on_panels} == variables


def test_psi_panels_draw_the_warn_and_alert_lines() -> None:
    psi_panels = [p for _, p in _panels() if "PSI" in p["title"]]
    assert len(psi_panels) == 3
    for panel in psi_panels:
        if panel["type"] == "timeseries":
            defaults = panel["fieldConfig"]["defaults"]
            steps = defaults["thresholds"]["steps"]
            assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed"}
            assert panel["interval"] == "1h"
        else:
            [override] = panel["fieldConfig"]["overrides"]
            assert override["matcher"] == {"id": "byName", "options": "psi"}
            steps = next(p["value"] for p in override["properties"] if p["id"] == "thresholds")[
                "steps"
            ]
        assert [step["value"] for step in steps] == [None, PSI_WARN, PSI_ALERT]


# --- Push payloads ---


def test_the_data_source_reaches_clickhouse_over_http_with_the_password_kept_secret() -> None:
    model = datasource_model("http://reader:s%40cret@clickhouse:8123/airparadis")

    assert model["uid"] == DATASOURCE_UID
    assert model["type"] == DATASOURCE_TYPE
    assert model["jsonData"] == {
        "host": "clickhouse",
        "port": 8123,
        "protocol": "http",
        "secure": False,
        "username": "reader",
        "defaultDatabase": "airparadis",
    }
    assert model["secureJsonData"] == {"password": "s@cret"}
    assert "s@cret" not in json.dumps(model["jsonData"])


@pytest.mark.parametrize(
    ("url", "protocol", "port", "secure"),
    [
        ("https://ch.example/db", "http", 8443, True),
        ("clickhouse://ch:9001/db", "native", 9001, False),
        ("clickhouses://ch/db", "native", 9440, True),
    ],
)
def test_the_data_source_protocol_and_port_follow_the_url(
    url: str, protocol: str, port: int, secure: bool
) -> None:
    data = datasource_model(url)["jsonData"]

    assert (data["protocol"], data["port"], data["secure"]) == (protocol, port, secure)
    assert "secureJsonData" not in datasource_model(url)


def test_a_data_source_url_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="ClickHouse URL"):
        datasource_model("postgres://db:5432/x")


# --- The replay script's drifts ---


def _replay_module() -> ModuleType:
    name = "airparadis_replay_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "replay.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_replay_drifts_make_tweets_longer_and_add_urls_from_a_chosen_point() -> None:
    replay = _replay_module()
    pool = [replay.Tweet("nice crew", 1), replay.Tweet("lost my bag", 0)]

    plan = replay.replay_plan(pool, 100, ["long", "urls"], 40, random.Random(1))

    assert len(plan) == 100
    assert all(t.text in {"nice crew", "lost my bag"} for t in plan[:40])
    drifted = text_feature_columns(t.text for t in plan[40:])
    assert min(drifted["length"]) > 100
    assert set(drifted["n_urls"]) == {2.0}


def test_replay_negative_drift_makes_nine_tweets_in_ten_negative() -> None:
    replay = _replay_module()
    pool = [replay.Tweet(f"tweet {i}", i % 2) for i in range(20)]

    plan = replay.pick_tweets(pool, 2000, ["negative"], random.Random(2))

    negative_share = sum(t.label == 0 for t in plan) / len(plan)
    assert negative_share == pytest.approx(0.9, abs=0.03)
