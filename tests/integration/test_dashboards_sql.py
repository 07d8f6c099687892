"""Every panel's SQL, taken from the dashboard JSON, run on the migrated schema in chDB against
seeded data whose answers are known: traffic, latency, error rate, alerts, and a PSI near 0 on
an undrifted hour and above the alert line on a drifted one. The functions of shared/panels.py
and shared/drift.py (what /monitor and the alerter call) must give the same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airparadis.dashboards import DASHBOARDS_DIR
from shared.drift import (
    FEATURES_BY_NAME,
    MIN_PREDICTIONS_FOR_PSI,
    PSI_ALERT,
    TEXT_FEATURES,
    bin_shares,
    psi,
    psi_by_feature,
    psi_over_time,
    reference_rows,
    save_reference,
)
from shared.grafana_sql import TimeWindow, run_sql
from shared.messages import RefusalCount, RequestsRefused
from shared.panels import (
    RECENT_ROWS,
    error_rate,
    model_versions,
    over_time,
    recent_alerts,
    run_query,
)
from shared.storage import ChdbStore, Store, apply_migrations, refusal_rows
from tests.drift import has_reference, reference_shares

pytestmark = pytest.mark.integration

MODEL = "airparadis-sentiment"
SERVING, OLD = "3", "2"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # hour A: 10:00, undrifted; hour B: 11:00
HOUR = timedelta(hours=1)
PER_MINUTE = 40  # predictions of the serving version each minute
OLD_PER_MINUTE = 5  # of the old version, hour A only
REPORTED_SHARE = {0: 0.05, 1: 0.10}  # share of hour A's and hour B's predictions reported
# Features the drifted hour leaves alone: their PSI must stay low there too.
STEADY = ("n_mentions", "n_hashtags", "n_emojis")
COUNTED = ("length", "n_words", "n_urls", "n_mentions", "n_hashtags", "n_emojis")
SNAPSHOT = ("text", "label", "probability", "threshold", "model_name", "model_version", "scored_at")


def _features(rng: np.random.Generator, n: int, *, drifted: bool) -> dict[str, np.ndarray]:
    """Tweets like the validation set, or drifted: longer, more URLs, more unknown words, and
    probabilities pushed toward positive."""
    length = rng.integers(200, 400, n) if drifted else rng.integers(15, 140, n)
    return {
        "probability": rng.beta(5, 1, n) if drifted else rng.beta(2, 2, n),
        "length": length,
        "n_words": length // 6,
        "n_urls": rng.choice([2, 3], n)
        if drifted
        else rng.choice([0, 1, 2], n, p=[0.7, 0.25, 0.05]),
        "n_mentions": rng.choice([0, 1, 2], n, p=[0.5, 0.4, 0.1]),
        "n_hashtags": rng.choice([0, 1, 2, 3], n, p=[0.7, 0.2, 0.07, 0.03]),
        "n_emojis": rng.choice([0, 1, 4], n, p=[0.8, 0.15, 0.05]),
        "oov_rate": rng.uniform(0.3, 0.6, n) if drifted else rng.uniform(0.0, 0.15, n),
    }


@dataclass
class Seeded:
    """What was stored, to compute the expected answers from."""

    predictions: list[dict[str, Any]]
    reference: list[dict[str, Any]]
    reported_ids: set[str]
    reports: int
    alerts: list[dict[str, Any]]

    def of(self, version: str, hour: int | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.predictions
            if p["model_version"] == version
            and (hour is None or START + hour * HOUR <= p["scored_at"] < START + (hour + 1) * HOUR)
        ]


def _predictions(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    plan = [(SERVING, hour, PER_MINUTE) for hour in (0, 1)] + [(OLD, 0, OLD_PER_MINUTE)]
    for version, hour, per_minute in plan:
        n = per_minute * 60
        features = _features(rng, n, drifted=hour == 1 and version == SERVING)
        latency = rng.gamma(2.0, 15.0, n)
        batch = rng.integers(1, 65, n)
        for i in range(n):
            scored_at = START + hour * HOUR + timedelta(seconds=60 * (i // per_minute))
            scored_at += timedelta(milliseconds=int(rng.integers(0, 59_000)))
            probability = float(features["probability"][i])
            rows.append(
                {
                    "id": f"v{version}-h{hour}-{i}",
                    "text": "x" * int(features["length"][i]),
                    "source": "api",
                    "label": "positive" if probability >= 0.5 else "negative",
                    "probability": probability,
                    "threshold": 0.5,
                    "model_name": MODEL,
                    "model_version": version,
                    "submitted_at": scored_at - timedelta(milliseconds=float(latency[i])),
                    "scored_at": scored_at,
                    "latency_ms": float(latency[i]),
                    "batch_size": int(batch[i]),
                    **{name: int(features[name][i]) for name in COUNTED},
                    # Stored as Float32: keep what ClickHouse keeps.
                    "oov_rate": float(np.float32(features["oov_rate"][i])),
                    **_language(version, hour, i),
                }
            )
    return rows


def _language(version: str, hour: int, i: int) -> dict[str, Any]:
    """Hour A in English with a few tweets too short to tell; in hour B the serving version
    also reads French tweets (one in four: not its language) and a few uncertain ones."""
    if i % 20 == 0:
        return {"language": "", "language_confidence": 0.0, "language_status": "too_short"}
    if hour == 1 and version == SERVING and i % 4 == 1:
        note = "This reads as French."
        return {"language": "fr", "language_confidence": 0.99, "language_status": "detected",
                "reliable": 0, "reliability_note": note}  # fmt: skip
    if hour == 1 and version == SERVING and i % 20 == 3:
        return {"language": "es", "language_confidence": 0.6, "language_status": "uncertain"}
    return {"language": "en", "language_confidence": 0.99, "language_status": "detected"}


CHALLENGER = "4"


def _shadow(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The challenger scored hour B of the serving version in shadow: it agrees with the
    champion but calls every tenth tweet negative where the champion said positive."""
    rows = []
    for k, p in enumerate(q for q in predictions if q["id"].startswith(f"v{SERVING}-h1-")):
        flip = k % 10 == 0 and p["label"] == "positive"
        rows.append(
            {
                "id": f"{CHALLENGER}-{p['id']}",
                "prediction_id": p["id"],
                "model_name": MODEL,
                "model_version": CHALLENGER,
                "label": "negative" if flip else p["label"],
                "probability": 0.1 if flip else p["probability"],
                "threshold": 0.5,
                "submitted_at": p["submitted_at"],
                "scored_at": p["scored_at"] + timedelta(milliseconds=5),
            }
        )
    return rows


def _label_of(row: dict[str, Any]) -> str:
    """A prediction's language as the dashboards name it (shared/panels.py LANGUAGE_LABEL)."""
    status = row["language_status"]
    return row["language"] if status == "detected" else status.replace("_", " ")


def _feedback(rows: list[dict[str, Any]], rng: np.random.Generator) -> tuple[list[dict], set[str]]:
    reports, reported = [], set()
    for hour, share in REPORTED_SHARE.items():
        candidates = [r for r in rows if r["id"].startswith(f"v{SERVING}-h{hour}-")]
        chosen = rng.choice(len(candidates), int(len(candidates) * share), replace=False)
        for k, index in enumerate(sorted(chosen)):
            prediction = candidates[index]
            reported.add(prediction["id"])
            # Every fifth prediction is reported twice: it must count once.
            for copy in range(2 if k % 5 == 0 else 1):
                reports.append(
                    {
                        "id": f"report-{prediction['id']}-{copy}",
                        "prediction_id": prediction["id"],
                        "correct_label": "negative",
                        "comment": "",
                        "reported_at": prediction["scored_at"] + timedelta(minutes=2, seconds=copy),
                        **{key: prediction[key] for key in SNAPSHOT},
                    }
                )
    return reports, reported


def _thresholds() -> list[dict[str, Any]]:
    """Two check rounds an hour for the serving version: hour A on target, hour B with fewer
    positives, where the adaptive threshold moves up at the second round."""
    rows = []
    plan = [  # hour, minute, prior, precision, threshold in use, threshold set
        (0, 10, 0.50, 0.90, 0.70, 0.70),
        (0, 40, 0.48, 0.89, 0.70, 0.70),
        (1, 10, 0.22, 0.72, 0.70, 0.70),
        (1, 40, 0.20, 0.70, 0.70, 0.85),
    ]
    for k, (hour, minute, prior, precision, in_use, threshold) in enumerate(plan):
        rows.append(
            {
                "id": f"round-{k}",
                "model_name": MODEL,
                "model_version": SERVING,
                "estimated_at": START + hour * HOUR + timedelta(minutes=minute),
                "mode": "adaptive",
                "method": "em",
                "tweets": 2400,
                "prior": prior,
                "prior_low": prior - 0.02,
                "prior_high": prior + 0.02,
                "precision": precision,
                "precision_low": precision - 0.03,
                "precision_high": precision + 0.03,
                "recall": 0.5,
                "target_precision": 0.9,
                "threshold_in_use": in_use,
                "threshold": threshold,
                "changed": threshold != in_use,
                "reached": True,
                "reason": "raised" if threshold != in_use else "on target",
            }
        )
    return rows


THRESHOLDS = _thresholds()

ALERTS = [
    {"id": "a1", "kind": "wrong_predictions", "raised_at": START + timedelta(minutes=15)},
    {"id": "a2", "kind": "drift", "raised_at": START + HOUR + timedelta(minutes=30)},
    {"id": "a3", "kind": "error_rate", "raised_at": START + HOUR + timedelta(minutes=45)},
]


def _summary(gateway: str, number: int, end: datetime, *counts: RefusalCount) -> RequestsRefused:
    return RequestsRefused(
        id=f"{gateway}-{number}",
        gateway=gateway,
        window_start=end - timedelta(seconds=9),
        window_end=end,
        counts=list(counts),
    )


def _refused(limit: str, key_name: str, count: int) -> RefusalCount:
    """Refused by the key's bucket when it is named, else by the client address's."""
    who = "key" if key_name else "address"
    return RefusalCount.model_validate(
        {"limit": limit, "who": who, "key_name": key_name, "count": count}
    )


# Two gateways. Hour A, 10:03: api by client address 5 + 3, feedback by key crm 2 + 1; hour B,
# 11:30: api by key crm 7.
REFUSALS = [
    _summary(
        "gw-a",
        0,
        START + timedelta(minutes=3, seconds=10),
        _refused("api", "", 5),
        _refused("feedback", "crm", 2),
    ),
    _summary("gw-a", 1, START + timedelta(minutes=3, seconds=20), _refused("api", "", 3)),
    _summary("gw-b", 0, START + timedelta(minutes=3, seconds=40), _refused("feedback", "crm", 1)),
    _summary("gw-a", 2, START + HOUR + timedelta(minutes=30), _refused("api", "crm", 7)),
]


@pytest.fixture(scope="module")
def seeded_database(chdb_folder: Path) -> Iterator[tuple[str, Seeded]]:
    """A database of this module, migrated and seeded once; its stores are closed at once."""
    name = f"test_dashboards_{datetime.now(UTC):%H%M%S%f}"
    rng = np.random.default_rng(2026)
    predictions = _predictions(rng)
    validation = _features(rng, 6000, drifted=False)
    reference = reference_rows(
        validation["probability"],
        {k: v for k, v in validation.items() if k != "probability"},
        MODEL,
        SERVING,
    )
    reports, reported = _feedback(predictions, rng)
    alerts = [{**a, "summary": f"{a['kind']} alert", "details": "{}"} for a in ALERTS]
    store = ChdbStore(chdb_folder, name)
    try:
        apply_migrations(store, 3650)
        store.insert("predictions", predictions)
        save_reference(store, reference)
        save_reference(store, reference)  # saved again at a second promotion
        store.insert("feedback", reports)
        store.insert("feedback", reports[:50])  # a redelivery
        store.insert("alerts", alerts)
        store.insert("thresholds", THRESHOLDS)
        store.insert("thresholds", THRESHOLDS[:1])  # a redelivery
        shadow = _shadow(predictions)
        store.insert("shadow_predictions", shadow)
        store.insert("shadow_predictions", shadow[:20])  # a redelivery
        store.insert("refusals", [row for summary in REFUSALS for row in refusal_rows(summary)])
        store.insert("refusals", refusal_rows(REFUSALS[0]))  # a redelivery
    finally:
        store.close()
    yield name, Seeded(predictions, reference, reported, len(reports), alerts)
    cleanup = ChdbStore(chdb_folder, name)
    try:
        cleanup.command(f"DROP DATABASE IF EXISTS {name}")
    finally:
        cleanup.close()


@pytest.fixture
def seeded(seeded_database: tuple[str, Seeded]) -> Seeded:
    return seeded_database[1]


@pytest.fixture
def store(chdb_folder: Path, seeded_database: tuple[str, Seeded]) -> Iterator[Store]:
    store = ChdbStore(chdb_folder, seeded_database[0])
    yield store
    store.close()


# --- Panels as Grafana has them: SQL read from dashboards/*.json ---


def _dashboard_panels() -> dict[str, dict[str, Any]]:
    panels = {}
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            panels[f"{path.stem}/{panel['title']}"] = panel
    return panels


PANELS = _dashboard_panels()
COLUMNS = {
    "traffic/Predictions per minute": ["t", "model_version", "predictions_per_minute"],
    "traffic/Latency p50 / p95 / p99": ["t", "model_version", "p50", "p95", "p99"],
    "traffic/Infer batch size": ["t", "model_version", "mean_batch_size", "max_batch_size"],
    "traffic/Requests refused for their rate (429)": [
        "t",
        "rate_limit",
        "refused_by",
        "refused_per_minute",
    ],
    "traffic/By model version": [
        "model_version",
        "predictions",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "mean_batch_size",
        "first_seen",
        "last_seen",
    ],
    "quality/Share of predictions reported wrong": ["t", "model_version", "error_rate"],
    "quality/Error rate by model version": [
        "model_version",
        "predictions",
        "reported",
        "error_rate",
    ],
    "quality/Alerts": ["t", "kind", "alerts"],
    "quality/Recent reports": [
        "reported_at",
        "model_version",
        "label",
        "correct_label",
        "probability",
        "threshold",
        "tweet",
        "comment",
    ],
    "quality/Recent alerts": ["raised_at", "kind", "summary"],
    'quality/Precision of "positive" on live traffic (estimated, 90 % interval)': [
        "t",
        "model_version",
        "precision",
        "precision_low",
        "precision_high",
        "target",
    ],
    "quality/Share of positive tweets (estimated; Sentiment140: 50 %)": [
        "t",
        "model_version",
        "positive_share",
        "positive_share_low",
        "positive_share_high",
    ],
    "quality/Threshold in use": ["t", "model_version", "threshold"],
    "quality/Reports with a correct label (the ground truth there is)": [
        "t",
        "model_version",
        "false_positives",
        "false_negatives",
    ],
    "quality/Threshold changes": [
        "estimated_at",
        "model_version",
        "mode",
        "threshold_in_use",
        "threshold",
        "prior",
        "precision",
        "reason",
    ],
    "drift/PSI of the predicted probability": ["t", "feature", "psi"],
    "drift/PSI of text features": ["t", "feature", "psi"],
    "drift/PSI over the selected range": ["feature", "psi", "predictions"],
    "drift/Positive rate": ["t", "model_version", "positive_rate"],
    "drift/Language mix (tweets per interval)": ["t", "language", "tweets"],
    "drift/Tweets in a language the model did not learn": [
        "t",
        "model_version",
        "unreliable_share",
    ],
    "drift/Not its language, by version": [
        "model_version",
        "predictions",
        "unreliable",
        "unreliable_share",
    ],
    "drift/Languages over the range": ["language", "tweets", "share", "unreliable"],
    "quality/Champion vs challenger (shadow): agreement and positive rates": [
        "t",
        "challenger",
        "agreement",
        "champion_positive_rate",
        "challenger_positive_rate",
    ],
    "quality/Champion vs challenger on the same tweets": [
        "challenger",
        "champion",
        "tweets",
        "agreement",
        "champion_positive_rate",
        "challenger_positive_rate",
        "reported",
        "champion_right",
        "challenger_right",
    ],
}
WHOLE = TimeWindow(START, START + 2 * HOUR - timedelta(milliseconds=1), interval_s=3600)
HOUR_A = TimeWindow(START, START + HOUR - timedelta(milliseconds=1), interval_s=3600)
HOUR_B = TimeWindow(START + HOUR, START + 2 * HOUR - timedelta(milliseconds=1), interval_s=3600)
ALL_VERSIONS: dict[str, str | None] = {"model_version": None}
SERVING_MODEL: dict[str, str | None] = {"model_name": MODEL, "model_version": SERVING}


def run_panel(
    store: Store, title: str, window: TimeWindow, variables: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """The panel's SQL from the dashboard JSON, its macros filled, run in chDB."""
    return run_sql(store, PANELS[title]["targets"][0]["rawSql"], window, variables)


def test_the_tests_cover_every_panel_of_every_dashboard() -> None:
    assert set(PANELS) == set(COLUMNS)


@pytest.mark.parametrize("title", sorted(COLUMNS))
def test_every_panel_runs_on_the_migrated_schema_with_its_columns(store: Store, title: str) -> None:
    variables = SERVING_MODEL if title.startswith("drift/PSI") else ALL_VERSIONS

    rows = run_panel(store, title, WHOLE, variables)

    assert rows, f"{title} returned nothing"
    assert list(rows[0]) == COLUMNS[title]


def _minutes(rows: list[dict[str, Any]]) -> dict[tuple[datetime, str], float]:
    return {(r["t"], r["model_version"]): r["predictions_per_minute"] for r in rows}


def test_predictions_per_minute_count_each_minute_by_version(store: Store) -> None:
    by_minute = TimeWindow(START, START + 2 * HOUR - timedelta(milliseconds=1), interval_s=60)

    rows = run_panel(store, "traffic/Predictions per minute", by_minute, ALL_VERSIONS)

    counts = _minutes(rows)
    assert len(counts) == 120 + 60
    assert {v for (t, version), v in counts.items() if version == SERVING} == {PER_MINUTE}
    assert {v for (t, version), v in counts.items() if version == OLD} == {OLD_PER_MINUTE}
    assert min(t for t, _ in counts) == START
    # Wider buckets still read per minute.
    hourly = _minutes(run_panel(store, "traffic/Predictions per minute", WHOLE, ALL_VERSIONS))
    assert hourly == {
        (START, SERVING): PER_MINUTE,
        (START, OLD): OLD_PER_MINUTE,
        (START + HOUR, SERVING): PER_MINUTE,
    }


def test_refused_requests_are_summed_per_minute_by_limit_and_key_once_each(
    store: Store,
) -> None:
    by_minute = TimeWindow(START, START + 2 * HOUR - timedelta(milliseconds=1), interval_s=60)

    rows = run_panel(store, "traffic/Requests refused for their rate (429)", by_minute, {})

    assert [(r["t"], r["rate_limit"], r["refused_by"], r["refused_per_minute"]) for r in rows] == [
        (START + timedelta(minutes=3), "api", "client address", 8),
        (START + timedelta(minutes=3), "feedback", "key crm", 3),
        (START + HOUR + timedelta(minutes=30), "api", "key crm", 7),
    ]
    # Wider buckets still read per minute.
    hourly = run_panel(store, "traffic/Requests refused for their rate (429)", WHOLE, {})
    assert [(r["t"], r["refused_by"], r["refused_per_minute"]) for r in hourly] == [
        (START, "client address", pytest.approx(8 / 60)),
        (START, "key crm", pytest.approx(3 / 60)),
        (START + HOUR, "key crm", pytest.approx(7 / 60)),
    ]


def test_latency_quantiles_are_numpys_on_the_stored_latencies(store: Store, seeded: Seeded) -> None:
    rows = run_panel(store, "traffic/Latency p50 / p95 / p99", WHOLE, {"model_version": SERVING})

    assert [r["t"] for r in rows] == [START, START + HOUR]
    for hour, row in enumerate(rows):
        latencies = [p["latency_ms"] for p in seeded.of(SERVING, hour)]
        expected = np.quantile(latencies, [0.5, 0.95, 0.99])
        assert [row["p50"], row["p95"], row["p99"]] == pytest.approx(expected, rel=1e-9)
        assert row["model_version"] == SERVING


def test_batch_sizes_are_the_mean_and_largest_batch(store: Store, seeded: Seeded) -> None:
    rows = run_panel(store, "traffic/Infer batch size", HOUR_A, ALL_VERSIONS)

    for row in rows:
        batches = [p["batch_size"] for p in seeded.of(row["model_version"], 0)]
        assert row["mean_batch_size"] == pytest.approx(np.mean(batches))
        assert row["max_batch_size"] == max(batches)


def test_traffic_by_version_lists_the_latest_version_first(store: Store, seeded: Seeded) -> None:
    rows = run_panel(store, "traffic/By model version", WHOLE, ALL_VERSIONS)

    assert [(r["model_version"], r["predictions"]) for r in rows] == [
        (SERVING, len(seeded.of(SERVING))),
        (OLD, len(seeded.of(OLD))),
    ]
    assert rows[0]["p99_ms"] == pytest.approx(
        np.quantile([p["latency_ms"] for p in seeded.of(SERVING)], 0.99)
    )


def test_error_rate_is_the_share_of_predictions_reported_at_least_once(
    store: Store, seeded: Seeded
) -> None:
    rows = run_panel(store, "quality/Share of predictions reported wrong", WHOLE, ALL_VERSIONS)

    rates = {(r["t"], r["model_version"]): r["error_rate"] for r in rows}
    assert rates == {
        (START, SERVING): pytest.approx(REPORTED_SHARE[0]),
        (START, OLD): 0.0,
        (START + HOUR, SERVING): pytest.approx(REPORTED_SHARE[1]),
    }


def test_error_rate_by_version_counts_reported_predictions_once(
    store: Store, seeded: Seeded
) -> None:
    rows = run_panel(store, "quality/Error rate by model version", WHOLE, ALL_VERSIONS)

    assert rows == [
        {"model_version": OLD, "predictions": 300, "reported": 0, "error_rate": 0.0},
        {
            "model_version": SERVING,
            "predictions": 4800,
            "reported": len(seeded.reported_ids),
            "error_rate": pytest.approx(len(seeded.reported_ids) / 4800),
        },
    ]
    assert len(seeded.reported_ids) < seeded.reports  # some were reported twice


def test_the_version_variable_narrows_every_figure_to_that_version(store: Store) -> None:
    rows = run_panel(store, "quality/Error rate by model version", WHOLE, {"model_version": OLD})

    assert [r["model_version"] for r in rows] == [OLD]
    reports = run_panel(store, "quality/Recent reports", WHOLE, {"model_version": OLD})
    assert reports == []


def test_recent_reports_show_the_latest_reports_first(store: Store, seeded: Seeded) -> None:
    rows = run_panel(store, "quality/Recent reports", WHOLE, ALL_VERSIONS)

    assert len(rows) == RECENT_ROWS
    times = [r["reported_at"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert {r["correct_label"] for r in rows} == {"negative"}
    assert all(len(r["tweet"]) <= 140 for r in rows)


def test_alerts_are_counted_by_kind_and_listed_latest_first(store: Store) -> None:
    counted = run_panel(store, "quality/Alerts", WHOLE, ALL_VERSIONS)
    listed = run_panel(store, "quality/Recent alerts", WHOLE, ALL_VERSIONS)

    assert counted == [
        {"t": START, "kind": "wrong_predictions", "alerts": 1},
        {"t": START + HOUR, "kind": "drift", "alerts": 1},
        {"t": START + HOUR, "kind": "error_rate", "alerts": 1},
    ]
    assert [a["kind"] for a in listed] == ["error_rate", "drift", "wrong_predictions"]
    assert listed[0]["raised_at"] == ALERTS[2]["raised_at"]


def test_positive_rate_is_the_share_called_positive(store: Store, seeded: Seeded) -> None:
    rows = run_panel(store, "drift/Positive rate", WHOLE, {"model_version": SERVING})

    for hour, row in enumerate(rows):
        labels = [p["label"] for p in seeded.of(SERVING, hour)]
        assert row["positive_rate"] == pytest.approx(labels.count("positive") / len(labels))
    assert rows[1]["positive_rate"] > rows[0]["positive_rate"] + 0.3


def _psi_by_hour(rows: list[dict[str, Any]]) -> dict[tuple[int, str], float]:
    return {(int((r["t"] - START) / HOUR), r["feature"]): r["psi"] for r in rows}


def test_probability_psi_is_near_zero_undrifted_and_above_the_alert_line_drifted(
    store: Store,
) -> None:
    rows = run_panel(store, "drift/PSI of the predicted probability", WHOLE, SERVING_MODEL)

    by_hour = _psi_by_hour(rows)
    assert set(by_hour) == {(0, "probability"), (1, "probability")}
    assert by_hour[0, "probability"] < 0.05
    assert by_hour[1, "probability"] > PSI_ALERT


def test_text_feature_psi_rises_only_for_the_features_that_drifted(store: Store) -> None:
    rows = run_panel(store, "drift/PSI of text features", WHOLE, SERVING_MODEL)

    by_hour = _psi_by_hour(rows)
    assert {feature for _, feature in by_hour} == set(TEXT_FEATURES)
    for feature in TEXT_FEATURES:
        assert by_hour[0, feature] < 0.05, feature
        if feature in STEADY:
            assert by_hour[1, feature] < 0.05, feature
        else:
            assert by_hour[1, feature] > PSI_ALERT, feature


def _python_psi(seeded: Seeded, hour: int) -> dict[str, float]:
    expected = reference_shares(seeded.reference)
    live = seeded.of(SERVING, hour)
    return {
        name: psi(expected[name], bin_shares((p[name] for p in live), FEATURES_BY_NAME[name]))
        for name in expected
    }


@pytest.mark.parametrize(
    ("hour", "window"), [(0, HOUR_A), (1, HOUR_B)], ids=["undrifted", "drifted"]
)
def test_sql_psi_over_a_range_equals_the_python_psi_on_the_same_data(
    store: Store, seeded: Seeded, hour: int, window: TimeWindow
) -> None:
    rows = run_panel(store, "drift/PSI over the selected range", window, SERVING_MODEL)

    in_sql = {r["feature"]: r["psi"] for r in rows}
    assert in_sql == pytest.approx(_python_psi(seeded, hour), rel=1e-9, abs=1e-12)
    assert {r["predictions"] for r in rows} == {PER_MINUTE * 60}


def test_psi_needs_a_reference_and_enough_predictions(store: Store) -> None:
    minute = TimeWindow(START, START + timedelta(seconds=59), interval_s=3600)
    assert PER_MINUTE < MIN_PREDICTIONS_FOR_PSI

    assert run_panel(store, "drift/PSI over the selected range", minute, SERVING_MODEL) == []
    no_reference = {"model_name": MODEL, "model_version": OLD}
    assert run_panel(store, "drift/PSI over the selected range", HOUR_A, no_reference) == []


# --- The functions the /monitor page and the alerter call: same SQL, same answers ---


def test_monitor_functions_return_the_panels_figures(store: Store, seeded: Seeded) -> None:
    since, until = WHOLE.since, WHOLE.until

    assert model_versions(store, since, until) == [SERVING, OLD]
    assert model_versions(store, since, until, MODEL) == [SERVING, OLD]
    assert over_time(store, "traffic_per_minute", since, until, SERVING, 3600) == [
        {"t": START, "model_version": SERVING, "predictions_per_minute": PER_MINUTE},
        {"t": START + HOUR, "model_version": SERVING, "predictions_per_minute": PER_MINUTE},
    ]
    assert over_time(store, "latency_quantiles", since, until, None, 3600) == run_panel(
        store, "traffic/Latency p50 / p95 / p99", WHOLE, ALL_VERSIONS
    )
    assert over_time(store, "batch_sizes", since, until, OLD, 3600)[0]["model_version"] == OLD
    assert len(run_query(store, "traffic_by_version", since, until, variables=ALL_VERSIONS)) == 2
    assert over_time(store, "error_rate", since, until, SERVING, 3600)[1][
        "error_rate"
    ] == pytest.approx(REPORTED_SHARE[1])
    assert error_rate(store, since, until) == {
        "predictions": 5100,
        "reported": len(seeded.reported_ids),
        "error_rate": pytest.approx(len(seeded.reported_ids) / 5100),
    }
    assert error_rate(store, since, until, OLD)["reported"] == 0
    assert len(run_query(store, "recent_reports", since, until, variables=ALL_VERSIONS)[:10]) == 10
    assert len(run_query(store, "alerts_over_time", since, until, interval_s=3600)) == 3
    assert [a["kind"] for a in recent_alerts(store, since, until, limit=2)] == [
        "error_rate",
        "drift",
    ]
    assert len(over_time(store, "positive_rate", since, until, SERVING)) > 0


def test_psi_functions_give_per_feature_figures_for_the_alerter_and_the_page(
    store: Store, seeded: Seeded
) -> None:
    undrifted = psi_by_feature(store, HOUR_A.since, HOUR_A.until, MODEL, SERVING)
    drifted = psi_by_feature(store, HOUR_B.since, HOUR_B.until, MODEL, SERVING)
    over_time = psi_over_time(store, WHOLE.since, WHOLE.until, MODEL, SERVING)

    assert undrifted == pytest.approx(_python_psi(seeded, 0), rel=1e-9, abs=1e-12)
    assert max(undrifted.values()) < 0.05
    assert drifted["probability"] > PSI_ALERT and drifted["length"] > PSI_ALERT
    assert set(over_time) == set(undrifted)
    assert [point["t"] for point in over_time["length"]] == [START, START + HOUR]
    assert over_time["length"][1]["psi"] > PSI_ALERT
    assert psi_by_feature(store, WHOLE.since, WHOLE.until, MODEL, OLD) == {}
    assert has_reference(store, MODEL, SERVING)
    assert not has_reference(store, MODEL, OLD)


def test_saving_a_reference_again_keeps_one_row_per_feature_and_bin(
    store: Store, seeded: Seeded
) -> None:
    [stats] = store.query(
        "SELECT count() AS n, uniqExact(feature, bin) AS bins FROM drift_reference FINAL"
    )

    assert stats == {"n": len(seeded.reference), "bins": len(seeded.reference)}


# --- Live precision, its threshold, and the reports that carry a correct label ---


def test_live_precision_and_prior_average_the_rounds_of_each_hour(store: Store) -> None:
    precision = run_panel(
        store,
        'quality/Precision of "positive" on live traffic (estimated, 90 % interval)',
        WHOLE,
        ALL_VERSIONS,
    )
    prior = run_panel(
        store,
        "quality/Share of positive tweets (estimated; Sentiment140: 50 %)",
        WHOLE,
        ALL_VERSIONS,
    )

    assert [round(r["precision"], 4) for r in precision] == [0.895, 0.71]
    assert [round(r["precision_low"], 4) for r in precision] == [0.865, 0.68]
    assert {r["target"] for r in precision} == {0.9}
    assert [round(r["positive_share"], 4) for r in prior] == [0.49, 0.21]
    assert over_time(store, "live_precision", START, START + 2 * HOUR, SERVING, 3600) == precision


def test_threshold_changes_list_only_the_rounds_that_moved_it(store: Store) -> None:
    rows = run_panel(store, "quality/Threshold changes", WHOLE, ALL_VERSIONS)

    assert [(r["threshold_in_use"], r["threshold"], r["reason"]) for r in rows] == [
        (0.70, 0.85, "raised")
    ]


def test_the_threshold_in_use_is_the_one_predictions_were_made_at(store: Store) -> None:
    rows = run_panel(store, "quality/Threshold in use", WHOLE, ALL_VERSIONS)

    assert {(r["model_version"], r["threshold"]) for r in rows} == {(SERVING, 0.5), (OLD, 0.5)}


def test_reported_false_positives_count_each_prediction_once(store: Store, seeded: Seeded) -> None:
    rows = run_panel(
        store,
        "quality/Reports with a correct label (the ground truth there is)",
        WHOLE,
        ALL_VERSIONS,
    )

    by_hour = {r["t"]: r["false_positives"] for r in rows if r["model_version"] == SERVING}
    # Each report comes 2 minutes after its prediction, and is counted in the hour it came.
    reported_at = {
        p["id"]: p["scored_at"] + timedelta(minutes=2)
        for p in seeded.of(SERVING)
        if p["label"] == "positive" and p["id"] in seeded.reported_ids
    }
    for hour in (0, 1):
        start = START + hour * HOUR
        expected = sum(start <= at < start + HOUR for at in reported_at.values())
        assert expected > 0 and by_hour[start] == expected
    assert {r["false_negatives"] for r in rows} == {0}  # every report here says negative


def test_the_language_mix_counts_each_language_per_interval(store: Store, seeded: Seeded) -> None:
    rows = run_panel(store, "drift/Language mix (tweets per interval)", WHOLE, ALL_VERSIONS)
    got = {(int((r["t"] - START) / HOUR), r["language"]): r["tweets"] for r in rows}
    expected: dict[tuple[int, str], int] = {}
    for p in seeded.predictions:
        key = (int((p["scored_at"] - START) / HOUR), _label_of(p))
        expected[key] = expected.get(key, 0) + 1
    assert got == expected
    assert {language for _, language in got} == {"en", "fr", "uncertain", "too short"}


def test_the_share_outside_the_models_languages_is_counted_per_version(
    store: Store, seeded: Seeded
) -> None:
    from shared.panels import language_totals, unreliable_share

    rows = run_panel(
        store,
        "drift/Tweets in a language the model did not learn",
        WHOLE,
        {"model_version": SERVING},
    )
    for hour, row in enumerate(rows):
        served = seeded.of(SERVING, hour)
        french = sum(1 for p in served if p.get("reliable") == 0)
        assert row["unreliable_share"] == pytest.approx(french / len(served))
    assert rows[0]["unreliable_share"] == 0 and rows[1]["unreliable_share"] > 0.2

    since, until = START + HOUR, START + 2 * HOUR - timedelta(milliseconds=1)
    share = unreliable_share(store, since, until)
    hour_b = [p for p in seeded.predictions if since <= p["scored_at"] <= until]
    assert share["predictions"] == len(hour_b)
    assert share["unreliable"] == sum(1 for p in hour_b if p.get("reliable") == 0)
    totals = {row["language"]: row for row in language_totals(store, since, until)}
    assert totals["fr"]["unreliable"] == share["unreliable"]
    assert sum(row["share"] for row in totals.values()) == pytest.approx(1.0)


def test_champion_and_challenger_are_compared_on_the_same_tweets(
    store: Store, seeded: Seeded
) -> None:
    from shared.panels import compare_live

    shadow = {row["prediction_id"]: row for row in _shadow(seeded.predictions)}
    served = [p for p in seeded.predictions if p["id"] in shadow]
    agree = sum(shadow[p["id"]]["label"] == p["label"] for p in served) / len(served)
    (summary,) = run_panel(store, "quality/Champion vs challenger on the same tweets", WHOLE, {})
    assert summary["challenger"] == CHALLENGER and summary["champion"] == SERVING
    assert summary["tweets"] == len(served)  # the redelivery counts once
    assert summary["agreement"] == pytest.approx(agree) and 0.9 < agree < 1
    positives = sum(shadow[p["id"]]["label"] == "positive" for p in served) / len(served)
    assert summary["challenger_positive_rate"] == pytest.approx(positives)
    # Every seeded report says negative: on them, who said negative was right.
    reported = [p for p in served if p["id"] in seeded.reported_ids]
    assert summary["reported"] == len(reported) > 0
    assert summary["champion_right"] == sum(p["label"] == "negative" for p in reported)
    assert summary["challenger_right"] == sum(
        shadow[p["id"]]["label"] == "negative" for p in reported
    )
    rows = run_panel(
        store,
        "quality/Champion vs challenger (shadow): agreement and positive rates",
        WHOLE,
        {},
    )
    assert [int((r["t"] - START) / HOUR) for r in rows] == [1]  # hour B only
    (compared,) = compare_live(store, MODEL, START, START + 2 * HOUR)
    assert compared["agreement"] == pytest.approx(agree)
    assert compared["champion_right"] == summary["champion_right"]
    # No operating curve stored for these versions: no precision estimate, said as None.
    assert compared["champion_precision"] is None and compared["challenger_precision"] is None
