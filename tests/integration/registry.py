"""An MLflow registry on SQLite with a model trained on the committed fixture tweets, and a home
folder with its own registry that the CLI runs against."""

from __future__ import annotations

from pathlib import Path

import mlflow
from typer.testing import CliRunner, Result

from airparadis.cli import app
from shared.nats_server import free_port
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


MODEL = "airparadis-sentiment"


class Home:
    """An AIRPARADIS_HOME with its own SQLite registry; the CLI runs against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.env = {
            "AIRPARADIS_HOME": str(root),
            "AIRPARADIS_MLFLOW_TRACKING_URI": self.tracking_uri,
            "AIRPARADIS_MODEL": MODEL,
            # No NATS server listens there, so a promotion is announced to nobody.
            "AIRPARADIS_NATS_URL": "",
            "AIRPARADIS_NATS_PORT": str(free_port()),
        }

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(app, ["--log-level", "WARNING", *args], env=self.env)

    def train(self, data: Path, candidates: str = "logreg,nb", *options: str) -> Result:
        """A smoke training of the simple family on data (with more options), registered as the
        next version."""
        result = self.run(
            "train",
            "simple",
            "--data",
            str(data),
            "--smoke",
            "--candidates",
            candidates,
            "--vectorizers",
            "tfidf",
            "--no-lemmatize",
            "--jobs",
            "1",
            *options,
        )
        assert result.exit_code == 0, result.output
        return result

    @property
    def registry(self) -> Registry:
        return Registry(self.tracking_uri, MODEL)


# What every training logs beside the model (training/experiment.py).
LOGGED_PLOTS = {
    "plots/confusion_matrix.png",
    "plots/roc_curve.png",
    "plots/precision_recall_curve.png",
}


def logged_files(client: mlflow.MlflowClient, run_id: str, folder: str) -> set[str]:
    """Paths of the files a run logged in one artifact folder."""
    return {item.path for item in client.list_artifacts(run_id, folder)}
