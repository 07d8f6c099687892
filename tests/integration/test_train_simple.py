"""Train the simple model into MLflow on SQLite, register, promote, load it back as serving does."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from shared.estimators.base import ModelNotFoundError
from shared.models import SentimentModel
from shared.preprocessing import PreprocessConfig
from shared.registry import CHAMPION, PREVIOUS, Registry
from tests.integration.registry import LOGGED_PLOTS, logged_files
from training.data import Split, load_sentiment140, split
from training.experiment import HOLDOUT_EXCLUDED_PARAM, TrainResult
from training.registry import split_rows
from training.simple import train_simple

pytestmark = pytest.mark.integration

POSITIVE = "I love this airline, the crew were amazing and so kind, thank you! best flight ever"
NEGATIVE = "worst flight ever, delayed for hours, lost my bag, rude staff, I hate this airline"


class MlflowHome:
    """One SQLite tracking store and artifact folder; each test registers its own model name."""

    def __init__(self, root: Path) -> None:
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts_dir = root / "artifacts"

    def train(
        self, data: pd.DataFrame | Split, registry: Registry | None = None, **options: object
    ) -> TrainResult:
        """Train on data into registry (default: a model name of its own)."""
        return train_simple(
            data,
            preprocess=PreprocessConfig(),
            target_precision=0.8,
            registry=registry or Registry(self.tracking_uri, f"sentiment-{uuid.uuid4().hex[:8]}"),
            artifacts_dir=self.artifacts_dir,
            progress=False,
            **options,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> MlflowHome:
    # Creating the SQLite schema takes seconds, so the module shares one store.
    return MlflowHome(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def fixture_model(mlflow_home: MlflowHome, airline_csv: Path) -> TrainResult:
    return mlflow_home.train(load_sentiment140(airline_csv), min_df=1)


@pytest.fixture(scope="module")
def airline_csv() -> Path:
    path = Path(__file__).parents[1] / "fixtures" / "airline_tweets.csv"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


def test_training_on_the_fixture_registers_a_loadable_champion(
    mlflow_home: MlflowHome, fixture_model: TrainResult
) -> None:
    Registry(mlflow_home.tracking_uri, fixture_model.model_name).promote(fixture_model.version)

    model = Registry(mlflow_home.tracking_uri, fixture_model.model_name).load()

    proba = model.predict_proba([POSITIVE, NEGATIVE, "ok", ""])
    assert proba.shape == (4,)
    assert np.all((proba >= 0) & (proba <= 1))
    assert model.version == fixture_model.version
    assert model.threshold == pytest.approx(fixture_model.threshold.threshold)
    assert fixture_model.sizes == {"train": 32, "val": 4, "test": 4}
    assert 0 <= fixture_model.test_at_threshold["precision"] <= 1
    assert fixture_model.inference_ms_per_tweet > 0
    assert fixture_model.model_size_bytes > 0


def test_the_run_records_params_metrics_split_and_plots(
    mlflow_home: MlflowHome, fixture_model: TrainResult
) -> None:
    client = Registry(mlflow_home.tracking_uri, fixture_model.model_name).client
    run = client.get_run(fixture_model.run_id)

    assert run.data.params["preprocess.lemmatize"] == "True"
    assert run.data.params["data.n_train"] == "32"
    for metric in ("test.at_0.5.precision", "test.at_threshold.roc_auc", "threshold"):
        assert metric in run.data.metrics
    for metric in ("train_seconds", "inference_ms_per_tweet", "model_size_bytes"):
        assert run.data.metrics[metric] > 0
    assert logged_files(client, run.info.run_id, "plots") == LOGGED_PLOTS
    assert logged_files(client, run.info.run_id, "data") == {"data/split.csv.gz"}
    candidates = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert [candidate.info.run_name for candidate in candidates] == ["tfidf-logreg"]
    version = client.get_model_version(fixture_model.model_name, fixture_model.version)
    assert float(version.tags["threshold"]) == pytest.approx(fixture_model.threshold.threshold)


def test_the_first_training_keeps_its_test_split_as_the_registry_holdout(
    mlflow_home: MlflowHome, fixture_model: TrainResult, airline_csv: Path
) -> None:
    registry = Registry(mlflow_home.tracking_uri, fixture_model.model_name)

    holdout = registry.holdout()

    assert holdout is not None
    test = split_rows(registry, fixture_model.version, load_sentiment140(airline_csv), "test")
    assert sorted(zip(holdout.frame["text"], holdout.frame["label"], strict=True)) == sorted(
        zip(test["text"], test["label"], strict=True)
    )
    assert f"test split of version {fixture_model.version}" in holdout.source
    holdout_run = registry.client.get_run(str(holdout.run_id))
    experiment = registry.client.get_experiment(holdout_run.info.experiment_id)
    assert experiment.name == "airparadis-holdout"
    assert experiment.artifact_location == mlflow_home.artifacts_dir.resolve().as_uri()


def test_a_later_training_leaves_the_holdout_tweets_out(
    mlflow_home: MlflowHome, fixture_model: TrainResult, airline_csv: Path
) -> None:
    registry = Registry(mlflow_home.tracking_uri, fixture_model.model_name)
    holdout = registry.holdout()
    assert holdout is not None
    frame = load_sentiment140(airline_csv)

    later = mlflow_home.train(frame, registry, min_df=1)

    run = registry.client.get_run(later.run_id)
    assert run.data.params[HOLDOUT_EXCLUDED_PARAM] == str(len(holdout))
    assert sum(later.sizes.values()) == len(frame) - len(holdout)
    seen = pd.concat(
        split_rows(registry, later.version, frame, part) for part in ("train", "val", "test")
    )
    assert not set(seen["text"]) & set(holdout.frame["text"])
    frozen = registry.holdout()
    assert frozen is not None and frozen.run_id == holdout.run_id


def test_a_ready_split_loses_the_holdout_tweets_from_train_and_validation(
    mlflow_home: MlflowHome, fixture_model: TrainResult, airline_csv: Path
) -> None:
    registry = Registry(mlflow_home.tracking_uri, fixture_model.model_name)
    holdout = registry.holdout()
    assert holdout is not None
    splits = split(load_sentiment140(airline_csv), seed=7)
    held = set(holdout.frame["text"])
    overlap = int(splits.train["text"].isin(held).sum() + splits.val["text"].isin(held).sum())
    assert overlap > 0, "another seed draws holdout tweets into train or validation"

    later = mlflow_home.train(splits, registry, min_df=1)

    run = registry.client.get_run(later.run_id)
    assert run.data.params[HOLDOUT_EXCLUDED_PARAM] == str(overlap)
    assert (
        later.sizes["train"] + later.sizes["val"] == len(splits.train) + len(splits.val) - overlap
    )
    assert later.sizes["test"] == len(splits.test)


def test_the_pyfunc_takes_a_text_column_and_returns_probabilities(
    mlflow_home: MlflowHome, fixture_model: TrainResult, tmp_path: Path
) -> None:
    client = Registry(mlflow_home.tracking_uri, fixture_model.model_name).client
    uri = client.get_model_version_download_uri(fixture_model.model_name, fixture_model.version)
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path))
    pyfunc = mlflow.pyfunc.load_model(local)
    texts = [POSITIVE, NEGATIVE]

    output = pyfunc.predict(pd.DataFrame({"text": texts}))

    python_model = pyfunc.unwrap_python_model()
    assert isinstance(python_model, SentimentModel)
    assert list(output.columns) == ["probability"]
    assert np.allclose(output["probability"], python_model.predict_proba(texts))
    assert np.allclose(python_model.predict(None, texts)["probability"], output["probability"])


def test_promoting_twice_keeps_the_former_champion_as_previous(
    mlflow_home: MlflowHome, fixture_model: TrainResult
) -> None:
    uri, name = mlflow_home.tracking_uri, f"promotion-{uuid.uuid4().hex[:8]}"
    first = Registry(uri, name).register(fixture_model.model_uri, tags={"threshold": "0.5"})
    second = Registry(uri, name).register(fixture_model.model_uri, tags={"threshold": "0.6"})

    Registry(uri, name).promote(first.version)
    Registry(uri, name).promote(second.version)

    client = Registry(uri, name).client
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == second.version
    assert str(client.get_model_version_by_alias(name, PREVIOUS).version) == first.version
    champion = Registry(uri, name).champion()
    assert champion is not None
    assert champion.threshold == 0.6
    assert Registry(uri, name).load(first.version).version == first.version


def test_a_model_without_champion_is_reported(mlflow_home: MlflowHome) -> None:
    assert Registry(mlflow_home.tracking_uri, "never-registered").champion() is None
    with pytest.raises(ModelNotFoundError, match="champion"):
        Registry(mlflow_home.tracking_uri, "never-registered").load()


def test_training_writes_nothing_in_the_working_directory_and_leaves_mlflow_as_it_was(
    mlflow_home: MlflowHome,
    airline_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.is_tracking_uri_set()

    mlflow_home.train(load_sentiment140(airline_csv), min_df=1)

    assert list(tmp_path.iterdir()) == []
    assert mlflow.is_tracking_uri_set() == before
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.data
def test_a_model_trained_on_real_tweets_ranks_obvious_ones(
    mlflow_home: MlflowHome, sentiment140_sample: Path
) -> None:
    result = mlflow_home.train(load_sentiment140(sentiment140_sample), sample=600)
    Registry(mlflow_home.tracking_uri, result.model_name).promote(result.version)

    model = Registry(mlflow_home.tracking_uri, result.model_name).load()
    positive, negative = model.predict_proba([POSITIVE, NEGATIVE])

    assert positive > negative
    assert result.test_at_default["roc_auc"] > 0.6
