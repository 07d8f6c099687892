"""Smoke-train the LSTM family into MLflow on SQLite, register it, load it back as serving does."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow", reason="the lstm extra (tensorflow-cpu) is not installed")
pytest.importorskip("gensim", reason="the lstm extra (gensim) is not installed")

from shared.calibration import Calibration
from shared.estimators.base import ProbabilityEstimator
from shared.models import LoadedModel, SentimentModel
from shared.preprocessing import TextPreprocessor
from shared.registry import Registry
from tests.integration.registry import LOGGED_PLOTS, logged_files
from training.data import balanced_sample, load_sentiment140
from training.experiment import Texts, TrainResult, train_family
from training.lstm import DEFAULT_PREPROCESS, LstmFamily, LstmOptions

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "airline_tweets.csv"
SMOKE_TWEETS = 400
TWEETS = [
    "I love this airline, the crew were amazing and so kind, thank you!",
    "worst flight ever, delayed for hours, lost my bag",
    "",
    "zzzz qqqq unknown words only",
]


@pytest.fixture(scope="module")
def tweets() -> pd.DataFrame:
    """A few hundred Sentiment140 tweets when AIRPARADIS_DATA is set, else the 40 fixture ones."""
    source = os.environ.get("AIRPARADIS_DATA")
    if source and Path(source).exists():
        return balanced_sample(load_sentiment140(Path(source)), SMOKE_TWEETS)
    return load_sentiment140(FIXTURE)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


class RecordingLstmFamily(LstmFamily):
    """The LSTM family, keeping the estimator it trained for the test to compare with."""

    fitted: ProbabilityEstimator | None = None

    def fit(self, train: Texts, val: Texts, work: Path, experiment_id: str) -> ProbabilityEstimator:
        self.fitted = super().fit(train, val, work, experiment_id)
        return self.fitted


@pytest.fixture(scope="module")
def family() -> RecordingLstmFamily:
    return RecordingLstmFamily(LstmOptions.smoke(epochs=2), progress=False)


@pytest.fixture(scope="module")
def trained(
    family: RecordingLstmFamily,
    tweets: pd.DataFrame,
    tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainResult:
    return train_family(
        family,
        tweets,
        preprocess=DEFAULT_PREPROCESS,
        target_precision=0.8,
        registry=Registry(tracking_uri, "lstm-smoke"),
        artifacts_dir=tmp_path_factory.mktemp("artifacts"),
        progress=False,
    )


@pytest.fixture(scope="module")
def served(trained: TrainResult, tracking_uri: str) -> LoadedModel:
    """The registered version loaded as the infer worker loads it (once: it builds a graph)."""
    return Registry(tracking_uri, trained.model_name).load(trained.version)


def test_a_smoke_training_registers_a_version_that_serving_loads(
    trained: TrainResult, served: LoadedModel
) -> None:
    proba = served.predict_proba(TWEETS)

    assert proba.shape == (len(TWEETS),)
    assert np.all(np.isfinite(proba))
    assert np.all((proba >= 0) & (proba <= 1))
    assert served.version == trained.version
    assert served.threshold == pytest.approx(trained.threshold.threshold)
    assert trained.candidate == "w2v-16 bilstm-8-8"
    assert trained.inference_ms_per_tweet > 0
    assert trained.model_size_bytes > 0


def test_the_served_model_scores_as_the_trained_one(
    family: RecordingLstmFamily, served: LoadedModel
) -> None:
    assert family.fitted is not None

    raw = family.fitted.positive_proba(TextPreprocessor(DEFAULT_PREPROCESS).transform(TWEETS))
    # Served probabilities are the trained network's, through the calibration training fitted.
    assert isinstance(served.model, SentimentModel)
    calibration = Calibration.from_params(served.model.config.calibration)
    expected = calibration.apply(raw)

    np.testing.assert_allclose(served.predict_proba(TWEETS), expected, atol=1e-6)


def test_the_run_records_epochs_params_plots_and_the_checkpoint_choice(
    trained: TrainResult, tracking_uri: str
) -> None:
    client = Registry(tracking_uri, trained.model_name).client
    run = client.get_run(trained.run_id)

    params = run.data.params
    assert params["family"] == "lstm"
    assert params["preprocess.remove_stopwords"] == "False"
    assert params["preprocess.lemmatize"] == "False"
    assert params["lstm.w2v_dim"] == "16"
    assert int(params["lstm.max_length_used"]) >= 1
    for name in ("epoch.loss", "epoch.val_loss", "epoch.val_precision", "epoch.learning_rate"):
        history = client.get_metric_history(trained.run_id, name)
        assert [point.step for point in history] == [1, 2], name
    metrics = run.data.metrics
    for name in ("w2v.vocabulary_size", "fit.best_epoch.val_precision", "test.at_0.5.accuracy"):
        assert name in metrics
    assert logged_files(client, trained.run_id, "plots") == LOGGED_PLOTS
    version = client.get_model_version(trained.model_name, trained.version)
    assert version.tags["family"] == "lstm"
