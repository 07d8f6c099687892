"""Log a fitted estimator as the shared SentimentModel pyfunc, the same way for every family.

The pyfunc class itself lives in shared/models.py because serving unpickles it. This module holds
the training side of that contract: where runs go (an explicit URI and artifact folder), the
signature and input example, the pinned requirements, and the config saved beside the estimator.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

from shared.models import (
    CONFIG_ARTIFACT,
    ESTIMATOR_ARTIFACT,
    PROBABILITY_COLUMN,
    TEXT_COLUMN,
    SentimentModel,
    SentimentModelConfig,
)
from shared.registry import Registry

logger = logging.getLogger(__name__)

MODEL_NAME_IN_RUN = "model"

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
    outputs=Schema([ColSpec("double", PROBABILITY_COLUMN)]),
)
INPUT_EXAMPLE = pd.DataFrame(
    {
        TEXT_COLUMN: [
            "@AirParadis thank you for a smooth flight and a lovely crew!",
            "@AirParadis my bag is lost again, worst service ever",
        ]
    }
)

# What loading and scoring any SentimentModel needs (the preprocessing libraries included).
SERVING_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "joblib",
    "nltk",
    "emoji",
    "lemminflect",
    "wordsegment",
)


def ensure_experiment(registry: Registry, name: str, artifacts_dir: Path) -> str:
    """The id of experiment `name`, created with its artifacts in artifacts_dir if missing.

    With a local registry (SQLite), an explicit artifact location keeps MLflow from writing
    ./mlruns in the working directory. A tracking server (http/https) decides where artifacts
    go itself (its --artifacts-destination, e.g. MinIO), so that every machine can read them.
    """
    client = registry.client
    if registry.tracking_uri.startswith(("http://", "https://")):
        existing = client.get_experiment_by_name(name)
        if existing is None:
            return client.create_experiment(name)
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    location = Path(artifacts_dir).resolve().as_uri()
    existing = client.get_experiment_by_name(name)
    if existing is None:
        Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=location)
    if existing.lifecycle_stage == "deleted":
        client.restore_experiment(existing.experiment_id)
    if existing.artifact_location != location:
        logger.warning(
            "experiment %s keeps its artifacts at %s, not %s",
            name,
            existing.artifact_location,
            location,
        )
    return existing.experiment_id


def pinned_requirements(packages: Sequence[str]) -> list[str]:
    """package==installed version, for the packages installed here."""
    pinned = []
    for package in packages:
        try:
            pinned.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            logger.warning("%s is not installed; left out of the model's requirements", package)
    return pinned


def log_sentiment_model(
    config: SentimentModelConfig,
    estimator_path: Path,
    *,
    family_packages: Sequence[str] = (),
) -> ModelInfo:
    """Log the SentimentModel pyfunc in the active run (inside mlflow_at) and return its info."""
    with tempfile.TemporaryDirectory(prefix="airparadis-config-") as config_dir:
        config_path = config.write(Path(config_dir) / "sentiment_config.json")
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=SentimentModel(),
            artifacts={CONFIG_ARTIFACT: str(config_path), ESTIMATOR_ARTIFACT: str(estimator_path)},
            signature=SIGNATURE,
            input_example=INPUT_EXAMPLE,
            # Explicit requirements: inferring them would start a subprocess that imports the model.
            pip_requirements=pinned_requirements([*SERVING_PACKAGES, *family_packages]),
        )
