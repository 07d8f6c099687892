"""The drift reference of a model version: built at training, kept in MLflow, stored at promotion.

Training bins the version's validation set (its predicted probabilities, the text features the
preprocess worker measures and the out-of-vocabulary rate the infer worker measures) with the
fixed bins of shared/monitoring.py, and logs the rows as `drift_reference.json` in the version's
run. When the version becomes the champion, the store worker copies them into ClickHouse's
`drift_reference` table, where the dashboards and the alerter compute the PSI of live traffic
against them. `airparadis models reference VERSION --data ...` builds them for a version trained
before this existed.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from shared.models import get_version, read_run_artifact, registry_client
from shared.monitoring import OOV_RATE, reference_rows, text_feature_columns
from shared.storage import as_utc

log = logging.getLogger(__name__)

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


def log_reference(rows: Sequence[Mapping[str, Any]]) -> None:
    """Log the rows in the active MLflow run."""
    mlflow.log_text(to_json(rows), REFERENCE_ARTIFACT)


def load_reference(
    tracking_uri: str, model_name: str, model_version: str
) -> list[dict[str, Any]] | None:
    """The reference logged with a registered version, or None when its run has none (a
    version trained before references existed: `airparadis models reference` makes one)."""
    info = get_version(tracking_uri, model_name, model_version)
    if info.run_id is None:
        return None
    try:
        logged = {item.path for item in registry_client(tracking_uri).list_artifacts(info.run_id)}
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise DriftReferenceError(
                f"the run of version {model_version} ({info.run_id}) no longer exists"
            ) from error
        raise
    if REFERENCE_ARTIFACT not in logged:
        return None
    rows = from_json(read_run_artifact(tracking_uri, info.run_id, REFERENCE_ARTIFACT))
    # A reference is keyed by the version it was built for; a copied artifact must not pose
    # as another version's.
    if any(row["model_version"] != str(model_version) for row in rows):
        raise DriftReferenceError(
            f"the reference logged with version {model_version} belongs to another version"
        )
    return rows


def log_reference_for_version(
    tracking_uri: str, model_name: str, model_version: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Log rows into the run of an already registered version (replacing any earlier ones)."""
    info = get_version(tracking_uri, model_name, model_version)
    if info.run_id is None:
        raise DriftReferenceError(
            f"version {model_version} of {model_name!r} has no run to log into"
        )
    with tempfile.TemporaryDirectory(prefix="airparadis-reference-") as folder:
        path = Path(folder) / REFERENCE_ARTIFACT
        path.write_text(to_json(rows), encoding="utf-8")
        registry_client(tracking_uri).log_artifact(info.run_id, str(path))
