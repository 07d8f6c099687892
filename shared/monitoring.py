"""Monitoring figures, each written once as SQL: the Grafana dashboards, the gateway's /monitor
page and the alerter all run the queries of `QUERIES`.

A query is ClickHouse SQL with the macros of Grafana's ClickHouse data source
(grafana-clickhouse-datasource) and `${variable}` references to the dashboard variables.
`airparadis/dashboards.py` renders the dashboards in dashboards/ from this registry; here,
`expand` fills the same macros with concrete times (and the variables with query parameters), so
the functions below run the very SQL that Grafana runs, on chDB or on a server.

Drift is the population stability index (PSI) of the predicted probability and of text features
against the reference distributions of the serving model's validation set, stored at promotion
in `drift_reference` (`reference_rows` builds those rows). `psi` is the same formula in Python.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict

from shared.storage import Store, as_utc

# --- Thresholds and constants ---

PSI_WARN = 0.1
PSI_ALERT = 0.25
# Share given to an empty bin, on both sides, so that ln(a/e) stays finite.
PSI_EPSILON = 1e-4
# Fewer observations than this in a bucket give a PSI dominated by sampling noise (about
# (bins - 1) / n when nothing drifts: 0.07 for the 15 length bins at 200), so no PSI is given.
MIN_PREDICTIONS_FOR_PSI = 200
# Rows of the "recent" tables.
RECENT_ROWS = 100
REFERENCE_TABLE = "drift_reference"

# --- Drift features: what is compared with the training reference, in fixed bins ---


@dataclass(frozen=True)
class DriftFeature:
    """One distribution watched for drift. Bin i holds the values in [lowers[i], lowers[i+1]);
    the last bin is open above (values under the first edge fall in bin 0)."""

    name: str
    sql: str  # the value, as Float64, from a row of `predictions`
    lowers: tuple[float, ...]
    top: float  # upper edge of the last bin, as stored (inf when open-ended)
    description: str

    def bin_of(self, value: float) -> int:
        """The bin of a value, as the SQL computes it (count of lower edges <= value, minus 1)."""
        return max(bisect.bisect_right(self.lowers, value), 1) - 1

    @property
    def uppers(self) -> tuple[float, ...]:
        return (*self.lowers[1:], self.top)


def _counts(label: str, sql: str) -> DriftFeature:
    return DriftFeature(label, sql, (0, 1, 2, 3), math.inf, f"{label}: 0, 1, 2, 3 or more")


PROBABILITY = "probability"
OOV_RATE = "oov_rate"

DRIFT_FEATURES: tuple[DriftFeature, ...] = (
    DriftFeature(
        PROBABILITY,
        "probability",
        tuple(i / 10 for i in range(10)),
        1.0,
        "predicted probability of positive, 10 equal bins on [0, 1]",
    ),
    DriftFeature(
        "length",
        "toFloat64(length)",
        tuple(float(edge) for edge in range(0, 281, 20)),
        math.inf,
        "characters: 0-20, 20-40, ..., 260-280, 280 or more",
    ),
    DriftFeature(
        "n_words",
        "toFloat64(n_words)",
        (0, 5, 10, 15, 20, 25, 30, 40),
        math.inf,
        "words: 0-5, 5-10, ..., 30-40, 40 or more",
    ),
    _counts("n_urls", "toFloat64(n_urls)"),
    _counts("n_mentions", "toFloat64(n_mentions)"),
    _counts("n_hashtags", "toFloat64(n_hashtags)"),
    _counts("n_emojis", "toFloat64(n_emojis)"),
    DriftFeature(
        OOV_RATE,
        "toFloat64(oov_rate)",
        (0, 0.05, 0.1, 0.2, 0.3, 0.5),
        1.0,
        "share of the tweet's tokens outside the model's vocabulary (NULL: not measured)",
    ),
)
FEATURES_BY_NAME: dict[str, DriftFeature] = {feature.name: feature for feature in DRIFT_FEATURES}
TEXT_FEATURES: tuple[str, ...] = tuple(f.name for f in DRIFT_FEATURES if f.name != PROBABILITY)


# --- Pure drift logic ---


def bin_shares(values: Iterable[float], feature: DriftFeature) -> list[float]:
    """Share of the values in each bin of the feature (all zeros when there is no value)."""
    counts = [0] * len(feature.lowers)
    for value in values:
        counts[feature.bin_of(value)] += 1
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of `actual` shares against `expected` shares, bin by bin:
    sum of (a - e) * ln(a / e), an empty bin counting as `epsilon`. 0 means the same
    distribution; above 0.1 is worth a look, above 0.25 is drift."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected shares but {len(actual)} actual shares")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def text_feature_columns(texts: Iterable[str]) -> dict[str, list[float]]:
    """The text features of each tweet, column by column (as `reference_rows` takes them),
    computed as the preprocess worker computes them for serving."""
    # Imported here: the gateway and the alerter read figures without the language data.
    from shared.preprocessing import text_features

    columns: dict[str, list[float]] = {
        name: [] for name in ("length", "n_words", "n_urls", "n_mentions", "n_hashtags", "n_emojis")
    }
    for text in texts:
        for name, value in text_features(text).model_dump().items():
            columns[name].append(float(value))
    return columns


def _present(values: Iterable[Any]) -> list[float]:
    """The values that were measured: None and NaN mean 'not measured' and are left out."""
    present = []
    for value in values:
        if value is None:
            continue
        number = float(value)
        if not math.isnan(number):
            present.append(number)
    return present


def reference_rows(
    probabilities: Iterable[float],
    features_frame: Any,
    model_name: str,
    model_version: str,
    created_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Rows of `drift_reference` for a model version: the binned distribution of its
    validation set, one row per feature and bin.

    `probabilities` are the model's predictions on the validation tweets; `features_frame`
    maps feature names to one value per tweet (a pandas DataFrame or a dict of lists, e.g.
    `text_feature_columns(texts)`, plus `oov_rate` where the model measures it). A feature
    absent from the frame, or never measured, gets no rows, and so no PSI.
    """
    created = as_utc(created_at or datetime.now(UTC))
    rows: list[dict[str, Any]] = []
    for feature in DRIFT_FEATURES:
        if feature.name == PROBABILITY:
            values = _present(probabilities)
        elif feature.name in features_frame:
            values = _present(features_frame[feature.name])
        else:
            continue
        if not values:
            continue
        shares = bin_shares(values, feature)
        for index, (lower, upper, share) in enumerate(
            zip(feature.lowers, feature.uppers, shares, strict=True)
        ):
            rows.append(
                {
                    "model_name": model_name,
                    "model_version": model_version,
                    "feature": feature.name,
                    "bin": index,
                    "lower": float(lower),
                    "upper": float(upper),
                    "share": share,
                    "observations": len(values),
                    "created_at": created,
                }
            )
    return rows


def reference_shares(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Feature -> shares by bin, from reference rows (as built or as read back)."""
    shares: dict[str, dict[int, float]] = {}
    for row in rows:
        shares.setdefault(row["feature"], {})[int(row["bin"])] = float(row["share"])
    return {name: [by_bin[i] for i in sorted(by_bin)] for name, by_bin in shares.items()}


# --- The queries: one registry, rendered into the dashboards and run by the functions below ---

QueryFormat = Literal["time_series", "table"]


@dataclass(frozen=True)
class PanelQuery:
    """A named query in Grafana-macro SQL: as a time series, its first column `t` is the time
    bucket and any string column splits the series (long format)."""

    name: str
    sql: str
    format: QueryFormat
    description: str

    @property
    def variables(self) -> frozenset[str]:
        """The dashboard variables the query refers to."""
        return frozenset(_VARIABLE.findall(self.sql)) | frozenset(_BARE_VARIABLE.findall(self.sql))


# Every value of the variable (its "All" option) turns the whole condition into 1=1.
VERSION_FILTER = (
    "$__conditionalAll(model_version IN (${model_version:singlequote}), $model_version)"
)
MODEL_FILTER = (
    "model_name = ${model_name:singlequote} AND model_version = ${model_version:singlequote}"
)
_REPORTED_IDS = "(SELECT prediction_id FROM feedback WHERE reported_at >= $__fromTime_ms)"


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


def _psi_sql(features: Sequence[str], *, per_interval: bool) -> str:
    """PSI of the given features against the reference of ${model_name} ${model_version}:
    per time bucket, or over the whole range (with the number of predictions)."""
    pairs = ",\n            ".join(f"('{name}', {FEATURES_BY_NAME[name].sql})" for name in features)
    bucket = "$__timeInterval(scored_at)" if per_interval else "$__fromTime"
    actual_share = "greatest(ifNull(a.n, 0) / w.total, __EPS__)"
    expected_share = "greatest(r.share, __EPS__)"
    head = "w.t AS t, w.feature AS feature" if per_interval else "w.feature AS feature"
    tail = "" if per_interval else ",\n    any(w.total) AS predictions"
    group = "t, feature" if per_interval else "feature"
    sql = f"""WITH
    reference AS (
        SELECT feature, bin, lower, share
        FROM {REFERENCE_TABLE} FINAL
        WHERE {MODEL_FILTER}
    ),
    edges AS (
        SELECT feature, arraySort(groupArray(lower)) AS lowers
        FROM reference
        GROUP BY feature
    ),
    observed AS (
        SELECT __BUCKET__ AS t, pair.1 AS feature, assumeNotNull(pair.2) AS value
        FROM predictions FINAL
        ARRAY JOIN [
            __PAIRS__
        ] AS pair
        WHERE $__timeFilter_ms(scored_at) AND {MODEL_FILTER} AND pair.2 IS NOT NULL
    ),
    actual AS (
        SELECT
            o.t AS t,
            o.feature AS feature,
            toUInt16(greatest(arrayCount(x -> x <= o.value, e.lowers), 1) - 1) AS bin,
            count() AS n
        FROM observed AS o
        INNER JOIN edges AS e ON e.feature = o.feature
        GROUP BY t, feature, bin
    ),
    totals AS (
        SELECT t, feature, sum(n) AS total
        FROM actual
        GROUP BY t, feature
        HAVING total >= __MIN__
    )
SELECT
    {head},
    sum(({actual_share} - {expected_share}) * ln({actual_share} / {expected_share})) AS psi{tail}
FROM totals AS w
INNER JOIN reference AS r ON r.feature = w.feature
LEFT JOIN actual AS a ON a.t = w.t AND a.feature = w.feature AND a.bin = r.bin
GROUP BY {group}
ORDER BY {group}"""
    return (
        sql.replace("__BUCKET__", bucket)
        .replace("__PAIRS__", pairs)
        .replace("__EPS__", repr(PSI_EPSILON))
        .replace("__MIN__", str(MIN_PREDICTIONS_FOR_PSI))
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
        "psi_probability",
        _psi_sql([PROBABILITY], per_interval=True),
        "time_series",
        "PSI of the predicted probability (10 bins) against the validation set of the model "
        "version, per interval (1 h at least).",
    ),
    PanelQuery(
        "psi_text_features",
        _psi_sql(TEXT_FEATURES, per_interval=True),
        "time_series",
        "PSI of each text feature against the validation set of the model version, per "
        "interval (1 h at least).",
    ),
    PanelQuery(
        "psi_window",
        _psi_sql([f.name for f in DRIFT_FEATURES], per_interval=False),
        "table",
        "PSI of every feature over the whole range, with the predictions it is computed on.",
    ),
)
QUERIES: dict[str, PanelQuery] = {query.name: query for query in _QUERIES}


# --- Grafana's macros, filled with concrete values ---


class MacroError(ValueError):
    """A query uses a macro or a variable that `expand` cannot fill; the message says which."""


@dataclass(frozen=True)
class TimeWindow:
    """What Grafana passes with a query: the time range and the interval of the buckets."""

    since: datetime
    until: datetime
    interval_s: int = 60

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"the window ends ({self.until}) before it starts ({self.since})")
        if self.interval_s < 1:
            raise ValueError(f"interval_s must be at least 1, got {self.interval_s}")


_MACRO = re.compile(r"\$__(\w+)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}")
_BARE_VARIABLE = re.compile(r"\$(?!__)(\w+)")
_FORMATTED = re.compile(r"\$\{(\w+)(?::(\w+))?\}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds(moment: datetime) -> int:
    return (as_utc(moment) - _EPOCH) // timedelta(seconds=1)


def _milliseconds(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp times 1000 can land a millisecond short.
    return (as_utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def _macro_arguments(sql: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of a macro call whose "(" is at `start` (nested
    parentheses and quotes respected), and the index just past its ")"."""
    depth, quote = 0, ""
    current: list[str] = []
    arguments: list[str] = []
    for index in range(start + 1, len(sql)):
        char = sql[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                arguments.append("".join(current).strip())
                return arguments, index + 1
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    raise MacroError(f"unclosed macro call at {sql[start - 20 : start + 20]!r}")


def _one_argument(name: str, arguments: list[str]) -> str:
    if len(arguments) != 1 or not arguments[0]:
        raise MacroError(f"$__{name} takes one argument, got {arguments}")
    return arguments[0]


def _fill_macro(
    name: str, arguments: list[str] | None, window: TimeWindow, variables: Mapping[str, str | None]
) -> str:
    """The text the grafana-clickhouse-datasource puts in place of one macro (its backend
    macros, pkg/macros/macros.go, and the front end's $__conditionalAll)."""
    since_s, until_s = _seconds(window.since), _seconds(window.until)
    since_ms, until_ms = _milliseconds(window.since), _milliseconds(window.until)
    plain = {
        "fromTime": f"toDateTime({since_s})",
        "toTime": f"toDateTime({until_s})",
        "fromTime_ms": f"fromUnixTimestamp64Milli({since_ms})",
        "toTime_ms": f"fromUnixTimestamp64Milli({until_ms})",
        "interval_s": str(window.interval_s),
    }
    if name in plain and arguments is None:
        return plain[name]
    if arguments is None:
        raise MacroError(f"$__{name} needs arguments or is not a macro this expander knows")
    if name == "timeFilter":
        column = _one_argument(name, arguments)
        return f"{column} >= toDateTime({since_s}) AND {column} <= toDateTime({until_s})"
    if name == "timeFilter_ms":
        column = _one_argument(name, arguments)
        return (
            f"{column} >= fromUnixTimestamp64Milli({since_ms}) AND "
            f"{column} <= fromUnixTimestamp64Milli({until_ms})"
        )
    if name == "timeInterval":
        column = _one_argument(name, arguments)
        return f"toStartOfInterval(toDateTime({column}), INTERVAL {window.interval_s} second)"
    if name == "conditionalAll":
        if len(arguments) != 2 or not arguments[1].startswith("$"):
            raise MacroError(f"$__conditionalAll takes (condition, $variable), got {arguments}")
        variable = arguments[1][1:]
        if variable not in variables:
            raise MacroError(f"$__conditionalAll refers to ${variable}, which has no value")
        return "1=1" if variables[variable] is None else arguments[0]
    raise MacroError(f"unknown macro $__{name}")


def _expand_macros(sql: str, window: TimeWindow, variables: Mapping[str, str | None]) -> str:
    out: list[str] = []
    position = 0
    while match := _MACRO.search(sql, position):
        out.append(sql[position : match.start()])
        name, end = match.group(1), match.end()
        arguments: list[str] | None = None
        if end < len(sql) and sql[end] == "(":
            arguments, end = _macro_arguments(sql, end)
        # A macro's arguments may hold macros or variables of their own.
        filled = _fill_macro(name, arguments, window, variables)
        out.append(_expand_macros(filled, window, variables) if arguments else filled)
        position = end
    out.append(sql[position:])
    return "".join(out)


def expand(
    sql: str, window: TimeWindow, variables: Mapping[str, str | None] | None = None
) -> tuple[str, dict[str, str]]:
    """Grafana-macro SQL made runnable, and its query parameters.

    Macros are filled as the ClickHouse data source fills them; `${name:singlequote}` becomes
    the server-side parameter `{name:String}` (the value travels apart from the SQL). A variable
    set to None stands for its "All" option.
    """
    values = dict(variables or {})
    expanded = _expand_macros(sql, window, values)
    parameters: dict[str, str] = {}

    def parameter(match: re.Match[str]) -> str:
        name, style = match.group(1), match.group(2)
        if style != "singlequote":
            raise MacroError(f"write the variable as ${{{name}:singlequote}}, not {match.group()}")
        value = values.get(name)
        if value is None:
            raise MacroError(f"the query needs a value for ${name}")
        parameters[name] = value
        return f"{{{name}:String}}"

    expanded = _FORMATTED.sub(parameter, expanded)
    if leftover := _BARE_VARIABLE.search(expanded):
        raise MacroError(f"variable {leftover.group()} outside $__conditionalAll is not supported")
    return expanded, parameters


def auto_interval_s(since: datetime, until: datetime, max_points: int = 120) -> int:
    """A round bucket width giving at most `max_points` buckets, one minute at least."""
    span = max((as_utc(until) - as_utc(since)).total_seconds(), 1.0)
    for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= max_points:
            return step
    return 86400 * math.ceil(span / 86400 / max_points)


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
    window = TimeWindow(since, until, interval_s or auto_interval_s(since, until))
    return run_sql(store, query.sql, window, variables)


def run_sql(
    store: Store,
    sql: str,
    window: TimeWindow,
    variables: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of Grafana-macro SQL (a panel's rawSql) over the window, as Grafana would get them;
    the time bucket `t` comes back as a UTC datetime."""
    expanded, parameters = expand(sql, window, variables)
    return [_bucket_as_datetime(row) for row in store.query(expanded, parameters)]


def _bucket_as_datetime(row: dict[str, Any]) -> dict[str, Any]:
    # $__timeInterval gives a DateTime (seconds), which Arrow results carry as a Unix time.
    bucket = row.get("t")
    if isinstance(bucket, int):
        row["t"] = datetime.fromtimestamp(bucket, UTC)
    return row


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
    {"traffic_per_minute", "latency_quantiles", "batch_sizes", "error_rate", "positive_rate"}
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
    predictions reported wrong; positive_rate, the share called positive."""
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


def psi_over_time(
    store: Store,
    since: datetime,
    until: datetime,
    model_name: str,
    model_version: str,
    interval_s: int = 3600,
) -> dict[str, list[dict[str, Any]]]:
    """Feature -> rows {t, psi}, one per bucket with enough predictions of that version
    (`MIN_PREDICTIONS_FOR_PSI`); empty when the version has no reference."""
    variables = {"model_name": model_name, "model_version": model_version}
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for name in ("psi_probability", "psi_text_features"):
        for row in run_query(store, name, since, until, interval_s=interval_s, variables=variables):
            by_feature.setdefault(row["feature"], []).append({"t": row["t"], "psi": row["psi"]})
    return by_feature


def psi_by_feature(
    store: Store, since: datetime, until: datetime, model_name: str, model_version: str
) -> dict[str, float]:
    """Feature -> PSI over the whole window for one model version against its reference.
    A feature is missing when the version has no reference for it or when the window holds
    fewer than `MIN_PREDICTIONS_FOR_PSI` measured values."""
    rows = run_query(
        store,
        "psi_window",
        since,
        until,
        variables={"model_name": model_name, "model_version": model_version},
    )
    return {row["feature"]: float(row["psi"]) for row in rows}


def save_reference(store: Store, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store reference rows; saving the same version's reference again replaces it."""
    store.insert(REFERENCE_TABLE, rows)


def has_reference(store: Store, model_name: str, model_version: str) -> bool:
    """Whether drift can be computed for this version."""
    rows = store.query(
        f"SELECT count() AS n FROM {REFERENCE_TABLE} FINAL"
        " WHERE model_name = {model_name:String} AND model_version = {model_version:String}",
        {"model_name": model_name, "model_version": model_version},
    )
    return bool(rows[0]["n"])
