"""The figures of the built-in /monitor page: the dashboards' own SQL, for one model version."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.drift import MIN_PREDICTIONS_FOR_PSI, psi_over_time
from shared.grafana_sql import auto_interval_s
from shared.panels import (
    compare_live,
    language_totals,
    model_versions,
    over_time,
    recent_alerts,
    refused_totals,
    run_query,
)
from shared.storage import Store


def _series(rows: list[dict[str, Any]], key: str, name: str | None = None) -> list[dict[str, Any]]:
    return [{"t": row["t"], name or key: row[key]} for row in rows]


def _finite(value: Any) -> Any:
    """None for NaN (an estimate with nothing called positive): JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _columns(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"t": row["t"], **{key: _finite(row[key]) for key in keys}} for row in rows]


def monitor_figures(
    store: Store, model_name: str, hours: int, model_version: str | None
) -> dict[str, Any]:
    """Traffic, latency, error rate, positive rate, live precision and the threshold in use,
    reported wrong labels, drift, alerts and the requests refused for their rate (all gateways,
    as stored) over the last hours."""
    # Up to the end of the current minute: time filters work in whole seconds, and the last
    # tweets, scored a moment ago, must count.
    until = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = until - timedelta(hours=hours)
    versions = model_versions(store, since, until, model_name)
    version = model_version or (versions[0] if versions else None)
    interval = auto_interval_s(since, until)
    # PSI wants enough tweets per bucket (MIN_PREDICTIONS_FOR_PSI): hourly as on the dashboard,
    # finer on short windows, where a rise must show within minutes.
    psi_interval = 3600 if hours >= 6 else 900 if hours >= 2 else 300
    figures: dict[str, Any] = {
        "since": since,
        "until": until,
        "model_versions": versions,
        "model_version": version,
        "traffic": [],
        "latency": [],
        "error_rate": [],
        "positive_rate": [],
        "precision": [],
        "prior": [],
        "threshold": [],
        "reported_wrong": [],
        "psi": {},
        "psi_interval_s": psi_interval,
        "psi_min_predictions": MIN_PREDICTIONS_FOR_PSI,
        "alerts": recent_alerts(store, since, until, limit=20),
        # Champion vs challenger on the same tweets (shadow scoring), whatever the version shown.
        "challengers": compare_live(store, model_name, since, until),
        "languages": {},
        "language_totals": [],
        "unreliable_share": [],
        "rate_limited_stored": refused_totals(store, since, until),
    }
    if version is None:
        return figures
    traffic = over_time(store, "traffic_per_minute", since, until, version, interval)
    figures["traffic"] = _series(traffic, "predictions_per_minute", "predictions")
    figures["latency"] = [
        {"t": r["t"], "p50": r["p50"], "p95": r["p95"], "p99": r["p99"]}
        for r in over_time(store, "latency_quantiles", since, until, version, interval)
    ]
    figures["error_rate"] = _series(
        over_time(store, "error_rate", since, until, version, interval), "error_rate"
    )
    figures["positive_rate"] = _series(
        over_time(store, "positive_rate", since, until, version, interval),
        "positive_rate",
    )
    for key, query, columns in (
        ("precision", "live_precision", ("precision", "precision_low", "precision_high", "target")),
        ("prior", "live_prior", ("positive_share", "positive_share_low", "positive_share_high")),
        ("threshold", "threshold_in_use", ("threshold",)),
        ("reported_wrong", "reported_wrong_labels", ("false_positives", "false_negatives")),
    ):
        rows = over_time(store, query, since, until, version, interval)
        figures[key] = _columns(rows, columns)
    figures["psi"] = psi_over_time(
        store, since, until, model_name, version, interval_s=psi_interval
    )
    # The language mix of the whole traffic (every version reads the same tweets) and the share
    # of this version's tweets in a language it did not learn.
    languages: dict[str, list[dict[str, Any]]] = {}
    for row in run_query(
        store, "language_mix", since, until, interval_s=interval, variables={"model_version": None}
    ):
        languages.setdefault(row["language"], []).append({"t": row["t"], "tweets": row["tweets"]})
    figures["languages"] = languages
    figures["language_totals"] = [
        {**row, "share": _finite(row["share"])} for row in language_totals(store, since, until)
    ]
    figures["unreliable_share"] = _series(
        over_time(store, "unreliable_share", since, until, version, interval), "unreliable_share"
    )
    return figures
