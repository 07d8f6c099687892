"""An MLflow registry on SQLite with a model trained on the committed fixture tweets."""

from __future__ import annotations

from pathlib import Path

import mlflow

from shared.preprocessing import PreprocessConfig
from shared.registry import Registry
from shared.settings import Settings
from training.data import load_sentiment140
from training.simple import train_simple


def train_fixture_model(tracking_uri: str, settings: Settings, data: Path) -> str:
    """Train the simple model on the fixture tweets and register it; return its version."""
    result = train_simple(
        load_sentiment140(data),
        preprocess=PreprocessConfig(),
        target_precision=settings.target_precision,
        registry=Registry(tracking_uri, settings.model_name),
        artifacts_dir=Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts",
        min_df=1,
        progress=False,
    )
    return result.version


# What every training logs beside the model (training/experiment.py).
LOGGED_PLOTS = {
    "plots/confusion_matrix.png",
    "plots/roc_curve.png",
    "plots/precision_recall_curve.png",
}


def logged_files(client: mlflow.MlflowClient, run_id: str, folder: str) -> set[str]:
    """Paths of the files a run logged in one artifact folder."""
    return {item.path for item in client.list_artifacts(run_id, folder)}
