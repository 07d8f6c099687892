"""Drift, in one place: the features watched against a model version's training reference,
the reference rows (built at training, logged in MLflow with the version, copied into
ClickHouse's `drift_reference` when it becomes the champion), and the population stability
index (PSI) of live traffic against them, as SQL for the dashboards, the /monitor page and the
alerter's checks, and as the same formula in Python.

Training bins the version's validation set (its predicted probabilities, the text features the
preprocess worker measures and the out-of-vocabulary rate the infer worker measures) with the
fixed bins below; `airparadis models reference VERSION --data ...` builds them for a version
trained before references existed.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared.grafana_sql import PanelQuery, run_panel
from shared.messages import TextFeatures
from shared.storage import Store, as_utc

log = logging.getLogger(__name__)

PSI_WARN = 0.1
PSI_ALERT = 0.25
# Share given to an empty bin, on both sides, so that ln(a/e) stays finite.
PSI_EPSILON = 1e-4
# Fewer observations than this in a bucket give a PSI dominated by sampling noise (about
# (bins - 1) / n when nothing drifts: 0.07 for the 15 length bins at 200), so no PSI is given.
MIN_PREDICTIONS_FOR_PSI = 200
REFERENCE_TABLE = "drift_reference"

# --- The features: what is compared with the training reference, in fixed bins ---


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


# --- Reference rows and the PSI formula ---


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

    columns: dict[str, list[float]] = {name: [] for name in TextFeatures.model_fields}
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


def save_reference(store: Store, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store reference rows; saving the same version's reference again replaces it."""
    store.insert(REFERENCE_TABLE, rows)


# --- The reference as the JSON artifact logged with its version (shared/registry.py) ---

REFERENCE_ARTIFACT = "drift_reference.json"


class DriftReferenceError(Exception):
    """A version's reference cannot be read; the message says why."""


def build_reference(
    raw_texts: Sequence[str],
    probabilities: Sequence[float] | np.ndarray,
    oov_rates: Sequence[float] | np.ndarray | None,
    model_name: str,
    model_version: str,
    created_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Reference rows from a validation set: its raw tweets, the model's probabilities for
    them and, where the model measures it, each tweet's out-of-vocabulary rate (NaN: none)."""
    if len(raw_texts) != len(probabilities):
        raise ValueError(f"{len(raw_texts)} tweets but {len(probabilities)} probabilities")
    features: dict[str, list[float]] = text_feature_columns(raw_texts)
    if oov_rates is not None:
        if len(oov_rates) != len(raw_texts):
            raise ValueError(f"{len(raw_texts)} tweets but {len(oov_rates)} OOV rates")
        features[OOV_RATE] = [float(rate) for rate in oov_rates]
    return reference_rows(
        [float(p) for p in probabilities], features, model_name, model_version, created_at
    )


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as the JSON artifact: times in ISO 8601, an open upper edge as null."""
    return json.dumps(
        [
            {
                **row,
                "upper": None if math.isinf(row["upper"]) else row["upper"],
                "created_at": as_utc(row["created_at"]).isoformat(),
            }
            for row in rows
        ],
        indent=1,
    )


def from_json(data: str | bytes) -> list[dict[str, Any]]:
    """Rows back from the JSON artifact, ready for `save_reference`."""
    try:
        rows = json.loads(data)
        return [
            {
                **row,
                "upper": math.inf if row["upper"] is None else float(row["upper"]),
                "created_at": datetime.fromisoformat(row["created_at"]),
            }
            for row in rows
        ]
    except (ValueError, TypeError, KeyError) as error:
        raise DriftReferenceError(f"unreadable {REFERENCE_ARTIFACT}: {error}") from error


# --- The PSI of live traffic, in SQL ---

MODEL_FILTER = (
    "model_name = ${model_name:singlequote} AND model_version = ${model_version:singlequote}"
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


PSI_QUERIES: tuple[PanelQuery, ...] = (
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
_PSI: dict[str, PanelQuery] = {query.name: query for query in PSI_QUERIES}


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
        for row in run_panel(
            store, _PSI[name], since, until, interval_s=interval_s, variables=variables
        ):
            by_feature.setdefault(row["feature"], []).append({"t": row["t"], "psi": row["psi"]})
    return by_feature


def psi_by_feature(
    store: Store, since: datetime, until: datetime, model_name: str, model_version: str
) -> dict[str, float]:
    """Feature -> PSI over the whole window for one model version against its reference.
    A feature is missing when the version has no reference for it or when the window holds
    fewer than `MIN_PREDICTIONS_FOR_PSI` measured values."""
    rows = run_panel(
        store,
        _PSI["psi_window"],
        since,
        until,
        variables={"model_name": model_name, "model_version": model_version},
    )
    return {row["feature"]: float(row["psi"]) for row in rows}
