"""The figures of the dashboards, each written once as a named query in Grafana-macro SQL
(shared/grafana_sql.py): traffic, latency, batch sizes, requests refused for their rate, error
rate, reports, alerts, positive rate, live precision and the threshold in use, and the PSI
queries of shared/drift.py.
airparadis/dashboards.py renders the dashboards from `QUERIES`; the functions below run the same
queries for the /monitor page and the alerter's checks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict

from shared.drift import PSI_QUERIES
from shared.grafana_sql import PanelQuery, run_panel
from shared.storage import Store

# Rows of the "recent" tables.
RECENT_ROWS = 100

# Every value of the variable (its "All" option) turns the whole condition into 1=1.
VERSION_FILTER = (
    "$__conditionalAll(model_version IN (${model_version:singlequote}), $model_version)"
)
_REPORTED_IDS = "(SELECT prediction_id FROM feedback WHERE reported_at >= $__fromTime_ms)"
# The champion's predictions of the range, to join the challenger's shadow scores with.
_SERVED = (
    "(SELECT id, label, model_version FROM predictions FINAL "
    "WHERE scored_at >= $__fromTime_ms - INTERVAL 1 HOUR)"
)
# The correct label users gave each reported prediction (the latest report wins).
_CORRECTED = (
    "(SELECT prediction_id, argMax(ifNull(correct_label, ''), reported_at) AS truth "
    "FROM feedback FINAL WHERE correct_label IS NOT NULL GROUP BY prediction_id)"
)
# A prediction's language as the dashboards show it: its code, or why there is none.
LANGUAGE_LABEL = (
    "multiIf(language_status = 'detected', language, language_status = 'uncertain', "
    "'uncertain', language_status = 'too_short', 'too short', 'not detected')"
)


def _per_interval(
    value_columns: str,
    *,
    table: str = "predictions",
    time: str = "scored_at",
    split: str = "model_version",
    where: str = VERSION_FILTER,
) -> str:
    return (
        f"SELECT\n    $__timeInterval({time}) AS t,\n    {split},\n    {value_columns}\n"
        f"FROM {table} FINAL\nWHERE $__timeFilter_ms({time}) AND {where}\n"
        f"GROUP BY t, {split}\nORDER BY t, {split}"
    )


_QUERIES: tuple[PanelQuery, ...] = (
    PanelQuery(
        "model_versions",
        "SELECT model_version\nFROM predictions\nWHERE $__timeFilter(scored_at)\n"
        "GROUP BY model_version\nORDER BY max(scored_at) DESC",
        "table",
        "Model versions that scored tweets in the range, the latest first (a variable).",
    ),
    PanelQuery(
        "model_names",
        "SELECT model_name\nFROM predictions\nWHERE $__timeFilter(scored_at)\n"
        "GROUP BY model_name\nORDER BY max(scored_at) DESC",
        "table",
        "Registered model names that scored tweets in the range (a variable).",
    ),
    PanelQuery(
        "model_versions_of_model",
        "SELECT model_version\nFROM predictions\n"
        "WHERE $__timeFilter(scored_at) AND model_name = ${model_name:singlequote}\n"
        "GROUP BY model_version\nORDER BY max(scored_at) DESC",
        "table",
        "Versions of ${model_name} that scored tweets in the range, the latest first.",
    ),
    PanelQuery(
        "traffic_per_minute",
        _per_interval("count() * 60 / $__interval_s AS predictions_per_minute"),
        "time_series",
        "Predictions per minute, by model version.",
    ),
    PanelQuery(
        "latency_quantiles",
        _per_interval(
            "quantileExactInclusive(0.5)(latency_ms) AS p50,\n"
            "    quantileExactInclusive(0.95)(latency_ms) AS p95,\n"
            "    quantileExactInclusive(0.99)(latency_ms) AS p99"
        ),
        "time_series",
        "Latency from submission to score, in ms: p50, p95 and p99 by model version.",
    ),
    PanelQuery(
        "batch_sizes",
        _per_interval("avg(batch_size) AS mean_batch_size,\n    max(batch_size) AS max_batch_size"),
        "time_series",
        "Size of the infer micro-batches each tweet was scored in: mean and largest.",
    ),
    PanelQuery(
        "traffic_by_version",
        "SELECT\n    model_version,\n    count() AS predictions,\n"
        "    quantileExactInclusive(0.5)(latency_ms) AS p50_ms,\n"
        "    quantileExactInclusive(0.95)(latency_ms) AS p95_ms,\n"
        "    quantileExactInclusive(0.99)(latency_ms) AS p99_ms,\n"
        "    avg(batch_size) AS mean_batch_size,\n"
        "    min(scored_at) AS first_seen,\n    max(scored_at) AS last_seen\n"
        f"FROM predictions FINAL\nWHERE $__timeFilter_ms(scored_at) AND {VERSION_FILTER}\n"
        "GROUP BY model_version\nORDER BY last_seen DESC",
        "table",
        "Predictions, latency and batch size of each model version over the range.",
    ),
    PanelQuery(
        "refused_per_minute",
        "SELECT\n    $__timeInterval(window_end) AS t,\n    rate_limit,\n"
        "    if(who = 'key', concat('key ', key_name), 'client address') AS refused_by,\n"
        "    sum(refused) * 60 / $__interval_s AS refused_per_minute\n"
        "FROM refusals FINAL\nWHERE $__timeFilter_ms(window_end)\n"
        "GROUP BY t, rate_limit, refused_by\nORDER BY t, rate_limit, refused_by",
        "time_series",
        "Requests the gateways refused with a 429 (rate limit), per minute: by limit (api: "
        "predict, explain, monitor, keys; feedback: reports) and by whose bucket was empty, an "
        "API key (named) or a client address (never named). Each gateway sums its refusals and "
        "sends them every AIRPARADIS_REFUSALS_FLUSH_S (10 s).",
    ),
    PanelQuery(
        "error_rate",
        _per_interval(f"avg(id IN {_REPORTED_IDS}) AS error_rate"),
        "time_series",
        "Share of the predictions made in each interval that users reported wrong "
        "(a prediction reported several times counts once).",
    ),
    PanelQuery(
        "error_rate_by_version",
        "SELECT\n    model_version,\n    count() AS predictions,\n"
        f"    countIf(id IN {_REPORTED_IDS}) AS reported,\n"
        "    reported / predictions AS error_rate\n"
        f"FROM predictions FINAL\nWHERE $__timeFilter_ms(scored_at) AND {VERSION_FILTER}\n"
        "GROUP BY model_version\nORDER BY model_version",
        "table",
        "Predictions made in the range, how many were reported wrong, and the share.",
    ),
    PanelQuery(
        "recent_reports",
        "SELECT\n    reported_at,\n    model_version,\n    label,\n    correct_label,\n"
        "    probability,\n    threshold,\n    leftUTF8(text, 140) AS tweet,\n    comment\n"
        f"FROM feedback FINAL\nWHERE $__timeFilter_ms(reported_at) AND {VERSION_FILTER}\n"
        f"ORDER BY reported_at DESC\nLIMIT {RECENT_ROWS}",
        "table",
        "The latest wrong-prediction reports, with the prediction as it was served.",
    ),
    PanelQuery(
        "alerts_over_time",
        _per_interval(
            "count() AS alerts", table="alerts", time="raised_at", split="kind", where="1 = 1"
        ),
        "time_series",
        "Alerts raised in each interval, by kind (wrong_predictions, drift, error_rate).",
    ),
    PanelQuery(
        "recent_alerts",
        "SELECT raised_at, kind, summary\nFROM alerts FINAL\nWHERE $__timeFilter_ms(raised_at)\n"
        f"ORDER BY raised_at DESC\nLIMIT {RECENT_ROWS}",
        "table",
        "The latest alerts, as emailed.",
    ),
    PanelQuery(
        "positive_rate",
        _per_interval("avg(label = 'positive') AS positive_rate"),
        "time_series",
        "Share of tweets the model called positive, by model version.",
    ),
    PanelQuery(
        "live_precision",
        _per_interval(
            "avg(precision) AS precision,\n    avg(precision_low) AS precision_low,\n"
            "    avg(precision_high) AS precision_high,\n    avg(target_precision) AS target",
            table="thresholds",
            time="estimated_at",
        ),
        "time_series",
        "Precision of the positive label on live traffic, estimated from the share of positive "
        "tweets (shared/shift.py), with its 90 % interval, and the target.",
    ),
    PanelQuery(
        "live_prior",
        _per_interval(
            "avg(prior) AS positive_share,\n    avg(prior_low) AS positive_share_low,\n"
            "    avg(prior_high) AS positive_share_high",
            table="thresholds",
            time="estimated_at",
        ),
        "time_series",
        "Estimated share of positive tweets in live traffic (Sentiment140: 50 %).",
    ),
    PanelQuery(
        "threshold_in_use",
        _per_interval("avg(threshold) AS threshold"),
        "time_series",
        "The threshold the predictions were made at (it moves in adaptive mode).",
    ),
    PanelQuery(
        "reported_wrong_labels",
        _per_interval(
            "uniqExactIf(prediction_id, label = 'positive' AND correct_label = 'negative')"
            " AS false_positives,\n"
            "    uniqExactIf(prediction_id, label = 'negative' AND correct_label = 'positive')"
            " AS false_negatives",
            table="feedback",
            time="reported_at",
        ),
        "time_series",
        "Reports with a correct label: predictions called positive that users say are negative "
        "(the bad buzz the precision is about), and the reverse; a prediction reported twice "
        "counts once. The ground truth there is.",
    ),
    PanelQuery(
        "threshold_changes",
        "SELECT estimated_at, model_version, mode, threshold_in_use, threshold, prior, "
        "precision, reason\nFROM thresholds FINAL\n"
        f"WHERE $__timeFilter_ms(estimated_at) AND changed AND {VERSION_FILTER}\n"
        f"ORDER BY estimated_at DESC\nLIMIT {RECENT_ROWS}",
        "table",
        "Each move of the adaptive threshold, with the estimate that caused it.",
    ),
    PanelQuery(
        "shadow_agreement",
        "SELECT\n    $__timeInterval(s.scored_at) AS t,\n    s.model_version AS challenger,\n"
        "    avg(s.label = p.label) AS agreement,\n"
        "    avg(p.label = 'positive') AS champion_positive_rate,\n"
        "    avg(s.label = 'positive') AS challenger_positive_rate\n"
        f"FROM shadow_predictions AS s FINAL\nINNER JOIN {_SERVED} AS p ON p.id = s.prediction_id\n"
        "WHERE $__timeFilter_ms(s.scored_at)\n"
        "GROUP BY t, challenger\nORDER BY t, challenger",
        "time_series",
        "Champion and challenger on the same tweets (shadow scoring): the share where their "
        "labels agree, and the positive rate of each.",
    ),
    PanelQuery(
        "shadow_summary",
        "SELECT\n    s.model_version AS challenger,\n    any(p.model_version) AS champion,\n"
        "    count() AS tweets,\n    avg(s.label = p.label) AS agreement,\n"
        "    avg(p.label = 'positive') AS champion_positive_rate,\n"
        "    avg(s.label = 'positive') AS challenger_positive_rate,\n"
        "    countIf(f.truth != '') AS reported,\n"
        "    countIf(f.truth != '' AND p.label = f.truth) AS champion_right,\n"
        "    countIf(f.truth != '' AND s.label = f.truth) AS challenger_right\n"
        f"FROM shadow_predictions AS s FINAL\nINNER JOIN {_SERVED} AS p ON p.id = s.prediction_id\n"
        f"LEFT JOIN {_CORRECTED} AS f ON f.prediction_id = s.prediction_id\n"
        "WHERE $__timeFilter_ms(s.scored_at)\n"
        "GROUP BY challenger\nORDER BY challenger",
        "table",
        "Each challenger against the champion that served the same tweets: how often they "
        "agree, their positive rates, and on the tweets users reported with a correct label, "
        "how many each got right.",
    ),
    PanelQuery(
        "language_mix",
        "SELECT\n    $__timeInterval(scored_at) AS t,\n"
        f"    {LANGUAGE_LABEL} AS language,\n    count() AS tweets\n"
        f"FROM predictions FINAL\nWHERE $__timeFilter_ms(scored_at) AND {VERSION_FILTER}\n"
        "GROUP BY t, language\nORDER BY t, language",
        "time_series",
        "Tweets per interval by detected language (shared/language.py); 'too short' and "
        "'uncertain' where it could not be told with confidence.",
    ),
    PanelQuery(
        "language_totals",
        f"SELECT\n    {LANGUAGE_LABEL} AS language,\n    count() AS tweets,\n"
        "    tweets / sum(tweets) OVER () AS share,\n"
        "    countIf(reliable = 0) AS unreliable\n"
        f"FROM predictions FINAL\nWHERE $__timeFilter_ms(scored_at) AND {VERSION_FILTER}\n"
        "GROUP BY language\nORDER BY tweets DESC, language",
        "table",
        "Tweets of each language over the range, their share, and how many were in a language "
        "the serving version did not learn (its verdict a guess).",
    ),
    PanelQuery(
        "unreliable_share",
        _per_interval("avg(reliable = 0) AS unreliable_share"),
        "time_series",
        "Share of tweets confidently in a language the serving version did not learn: a drift "
        "of the audience the model cannot see in the words (alert at "
        "AIRPARADIS_LANGUAGE_ALERT_SHARE).",
    ),
    PanelQuery(
        "unreliable_by_version",
        "SELECT\n    model_version,\n    count() AS predictions,\n"
        "    countIf(reliable = 0) AS unreliable,\n"
        "    unreliable / predictions AS unreliable_share\n"
        f"FROM predictions FINAL\nWHERE $__timeFilter_ms(scored_at) AND {VERSION_FILTER}\n"
        "GROUP BY model_version\nORDER BY model_version",
        "table",
        "Predictions of each version over the range and how many were in a language it did "
        "not learn.",
    ),
)
QUERIES: dict[str, PanelQuery] = {query.name: query for query in (*_QUERIES, *PSI_QUERIES)}


def run_query(
    store: Store,
    name: str,
    since: datetime,
    until: datetime,
    *,
    interval_s: int | None = None,
    variables: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the named query over [since, until], its macros and variables filled."""
    try:
        query = QUERIES[name]
    except KeyError:
        raise ValueError(f"unknown query {name!r}; expected one of {sorted(QUERIES)}") from None
    return run_panel(store, query, since, until, interval_s=interval_s, variables=variables)


# --- What the /monitor page and the alerter call ---


class ErrorRate(TypedDict):
    """Predictions made in a window, how many users reported wrong, and the share (None when
    there was no prediction)."""

    predictions: int
    reported: int
    error_rate: float | None


def _versions(model_version: str | None) -> dict[str, str | None]:
    return {"model_version": model_version}


def model_versions(
    store: Store, since: datetime, until: datetime, model_name: str | None = None
) -> list[str]:
    """Model versions that scored tweets in the window, the latest first."""
    if model_name is None:
        rows = run_query(store, "model_versions", since, until)
    else:
        rows = run_query(
            store, "model_versions_of_model", since, until, variables={"model_name": model_name}
        )
    return [row["model_version"] for row in rows]


# The per-interval queries the /monitor page draws (`over_time`).
PER_INTERVAL = frozenset(
    {
        "unreliable_share",
        "traffic_per_minute",
        "latency_quantiles",
        "batch_sizes",
        "error_rate",
        "positive_rate",
        "live_precision",
        "live_prior",
        "threshold_in_use",
        "reported_wrong_labels",
    }
)


def over_time(
    store: Store,
    name: str,
    since: datetime,
    until: datetime,
    model_version: str | None = None,
    interval_s: int | None = None,
) -> list[dict[str, Any]]:
    """Rows {t, model_version, ...} of a per-interval query, one per bucket and version (one
    version, or all with None). Besides t and model_version: predictions_per_minute
    (traffic_per_minute); p50, p95, p99 in ms from submission to score (latency_quantiles);
    mean_batch_size, max_batch_size (batch_sizes); error_rate, the share of the bucket's
    predictions reported wrong; positive_rate, the share called positive; precision,
    precision_low, precision_high, target (live_precision); positive_share and its low and
    high (live_prior); threshold (threshold_in_use); false_positives, false_negatives
    (reported_wrong_labels)."""
    if name not in PER_INTERVAL:
        raise ValueError(
            f"{name!r} is not a per-interval query; expected one of {sorted(PER_INTERVAL)}"
        )
    return run_query(
        store, name, since, until, interval_s=interval_s, variables=_versions(model_version)
    )


def error_rate_by_version(
    store: Store, since: datetime, until: datetime, model_version: str | None = None
) -> list[dict[str, Any]]:
    """Rows {model_version, predictions, reported, error_rate} over the window."""
    return run_query(
        store, "error_rate_by_version", since, until, variables=_versions(model_version)
    )


def error_rate(
    store: Store, since: datetime, until: datetime, model_version: str | None = None
) -> ErrorRate:
    """Of the predictions made in [since, until] (by one version, or all), how many users
    reported wrong (reports made up to now count), and the share."""
    rows = error_rate_by_version(store, since, until, model_version)
    predictions = sum(int(row["predictions"]) for row in rows)
    reported = sum(int(row["reported"]) for row in rows)
    return {
        "predictions": predictions,
        "reported": reported,
        "error_rate": reported / predictions if predictions else None,
    }


def recent_alerts(
    store: Store, since: datetime, until: datetime, limit: int = RECENT_ROWS
) -> list[dict[str, Any]]:
    """The latest alerts, newest first: {raised_at, kind, summary}."""
    return run_query(store, "recent_alerts", since, until)[:limit]


class LanguageShare(TypedDict):
    """Predictions made in a window and how many were in a language their version did not
    learn, and the share (None when there was no prediction)."""

    predictions: int
    unreliable: int
    unreliable_share: float | None


def language_totals(store: Store, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Rows {language, tweets, share, unreliable} over the window, the most frequent first."""
    return run_query(store, "language_totals", since, until, variables=_versions(None))


def unreliable_share(store: Store, since: datetime, until: datetime) -> LanguageShare:
    """Of the predictions made in [since, until], how many were confidently in a language the
    version serving them did not learn."""
    rows = run_query(store, "unreliable_by_version", since, until, variables=_versions(None))
    predictions = sum(int(row["predictions"]) for row in rows)
    unreliable = sum(int(row["unreliable"]) for row in rows)
    return {
        "predictions": predictions,
        "unreliable": unreliable,
        "unreliable_share": unreliable / predictions if predictions else None,
    }


class LiveComparison(TypedDict):
    """A challenger against the champion on the same tweets over a window (shadow scoring):
    agreement, positive rates, the estimated precision of each on that traffic (None without
    an operating curve), and on reported tweets, how many each got right."""

    challenger: str
    champion: str
    tweets: int
    agreement: float
    champion_positive_rate: float
    challenger_positive_rate: float
    champion_precision: float | None
    challenger_precision: float | None
    reported: int
    champion_right: int
    challenger_right: int


_SHADOW_PAIRS = """
SELECT p.probability AS champion, p.threshold AS champion_threshold,
       s.probability AS challenger, s.threshold AS challenger_threshold
FROM shadow_predictions AS s FINAL
INNER JOIN (SELECT id, probability, threshold FROM predictions FINAL
            WHERE scored_at >= fromUnixTimestamp64Milli({since_ms:Int64}) - INTERVAL 1 HOUR) AS p
    ON p.id = s.prediction_id
WHERE s.model_version = {challenger:String}
  AND s.scored_at >= fromUnixTimestamp64Milli({since_ms:Int64})
  AND s.scored_at <= fromUnixTimestamp64Milli({until_ms:Int64})
ORDER BY s.scored_at DESC
LIMIT {limit:UInt32}
"""


def compare_live(
    store: Store,
    model_name: str,
    since: datetime,
    until: datetime,
    limit: int = 5000,
    min_tweets: int = 200,
) -> list[LiveComparison]:
    """Each challenger scored in shadow over [since, until] against the champion that served
    the same tweets (shadow_summary), with the live precision of each estimated from those
    tweets' scores and its operating curve (shared/shift.py), once there are `min_tweets` of
    them (as the champion's estimate waits for AIRPARADIS_PRECISION_MIN_PREDICTIONS)."""
    from shared.shift import estimate, load_curve

    comparisons: list[LiveComparison] = []
    for row in run_query(store, "shadow_summary", since, until):
        window = {
            "since_ms": int(since.timestamp() * 1000),
            "until_ms": int(until.timestamp() * 1000),
        }
        pairs = store.query(
            _SHADOW_PAIRS, {"challenger": row["challenger"], "limit": limit, **window}
        )
        precision: dict[str, float | None] = {"champion": None, "challenger": None}
        for side in ("champion", "challenger"):
            curve = load_curve(store, model_name, str(row[side]))
            if curve is None or len(pairs) < min_tweets:
                continue
            scores = [float(pair[side]) for pair in pairs]
            found = estimate(scores, curve, float(pairs[0][f"{side}_threshold"]), resamples=50)
            value = found.precision.value
            precision[side] = None if value != value else round(float(value), 4)
        comparisons.append(
            {
                "challenger": str(row["challenger"]),
                "champion": str(row["champion"]),
                "tweets": int(row["tweets"]),
                "agreement": float(row["agreement"]),
                "champion_positive_rate": float(row["champion_positive_rate"]),
                "challenger_positive_rate": float(row["challenger_positive_rate"]),
                "champion_precision": precision["champion"],
                "challenger_precision": precision["challenger"],
                "reported": int(row["reported"]),
                "champion_right": int(row["champion_right"]),
                "challenger_right": int(row["challenger_right"]),
            }
        )
    return comparisons


def refused_totals(store: Store, since: datetime, until: datetime) -> dict[str, int]:
    """Requests every gateway refused for their rate in the window, as stored (the Grafana
    panel's query, a bucket a minute): {total, api, feedback}."""
    per_limit: Counter[str] = Counter()
    for row in run_query(store, "refused_per_minute", since, until, interval_s=60):
        per_limit[row["rate_limit"]] += round(row["refused_per_minute"])
    return {"total": per_limit.total(), "api": per_limit["api"], "feedback": per_limit["feedback"]}
