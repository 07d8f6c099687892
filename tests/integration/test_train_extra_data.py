"""`airparadis train simple --extra-data`: labelled airline reports trained on beside Sentiment140,
the most recent kept apart as the in-domain holdout, both logged as MLflow datasets (MLflow on
SQLite, the CLI as a user runs it)."""

from __future__ import annotations

import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from shared.preprocessing import PreprocessConfig, TextPreprocessor
from shared.registry import Registry, mlflow_at
from tests.integration.registry import Home
from training.data import load_sentiment140, split
from training.experiment import preprocess_frame, with_extra
from training.model import ensure_experiment
from training.registry import INDOMAIN_AT_THRESHOLD_PREFIX, INDOMAIN_SPLIT_ARTIFACT
from training.simple import SimpleFamily

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures"
TWEETS = FIXTURES / "airline_tweets.csv"  # stands in for Sentiment140: 40 tweets, quick
REPORTS = FIXTURES / "airline_reports.csv"  # 20 labelled reports, as `feedback export` writes
FIGURES = {f"{INDOMAIN_AT_THRESHOLD_PREFIX}{name}" for name in ("precision", "recall", "accuracy")}


def latest(reports: pd.DataFrame, n: int) -> set[str]:
    """The prediction ids of the n most recent reports."""
    ordered = reports.assign(at=pd.to_datetime(reports["reported_at"])).sort_values("at")
    return set(ordered["prediction_id"].iloc[-n:])


def test_extra_data_is_trained_on_and_its_most_recent_rows_tested_on(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")

    result = home.train(TWEETS, "logreg", "--extra-data", str(REPORTS), "--extra-weight", "2")

    said = " ".join(result.output.split())
    assert "Extra data: 20 airline tweets" in said
    assert "the 6 most recent kept apart as the in-domain holdout, 14 trained on" in said
    assert "in-domain holdout (6 airline tweets never trained on): precision" in said
    version = home.registry.version("1")
    assert version.run_id is not None
    client = home.registry.client
    run = client.get_run(version.run_id)
    inputs = {
        (d.dataset.name, next(t.value for t in d.tags if t.key == "mlflow.data.context"))
        for d in run.inputs.dataset_inputs
    }
    assert inputs == {
        ("sentiment140", "training"),
        ("airline-feedback", "training"),
        ("airline-feedback", "evaluation"),
    }
    params = run.data.params
    assert params["data.sentiment140.rows"] == "40"
    assert (params["data.airline_feedback.rows"], params["data.airline_feedback.train_rows"]) == (
        "20",
        "14",
    )
    assert params["data.airline_feedback.holdout_rows"] == "6"
    assert params["data.airline_feedback.weight"] == "2.0"
    assert set(run.data.metrics) >= FIGURES
    # Copied onto the version like the test figures, beside them.
    for figure in FIGURES:
        assert float(version.tags[figure]) == pytest.approx(run.data.metrics[figure])
    assert "test.at_threshold.precision" in version.tags
    assert version.tags["indomain.tweets"] == "6"
    assert version.tags["data.n_train"] == str(32 + 14)
    # The logged split of the reports: the holdout is the 6 most recent, none of them trained on.
    logged = pd.read_csv(
        io.BytesIO(home.registry.read_artifact(version.run_id, INDOMAIN_SPLIT_ARTIFACT)),
        compression="gzip",
    )
    reports = load_sentiment140(REPORTS)
    by_split = {
        part: set(reports.loc[rows["source_row"], "prediction_id"])
        for part, rows in logged.groupby("split")
    }
    assert by_split["holdout"] == latest(reports, 6)
    assert len(by_split["train"]) == 14 and by_split["train"].isdisjoint(by_split["holdout"])
    # Validation and test stay Sentiment140's: the reports joined the training split only.
    split_rows = pd.read_csv(
        io.BytesIO(home.registry.read_artifact(version.run_id, "data/split.csv.gz")),
        compression="gzip",
    )
    assert len(split_rows) == 40


def test_too_few_reports_for_a_holdout_are_all_trained_on(tmp_path: Path) -> None:
    few = tmp_path / "few.csv"
    pd.read_csv(REPORTS).head(4).to_csv(few, index=False)
    home = Home(tmp_path / "home")

    result = home.train(TWEETS, "logreg", "--extra-data", str(few))

    said = " ".join(result.output.split())
    assert "too few to keep 30% apart (fewer than 5): all are trained on" in said
    assert "in-domain holdout (" not in said
    version = home.registry.version("1")
    assert version.run_id is not None
    run = home.registry.client.get_run(version.run_id)
    assert run.data.params["data.airline_feedback.train_rows"] == "4"
    assert not FIGURES & set(run.data.metrics)
    assert "indomain.tweets" not in version.tags


def test_the_simple_family_weighs_the_extra_tweets_in_its_fit(tmp_path: Path) -> None:
    """Reports that call praise negative pull the model further the more they weigh."""
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", "weights")
    experiment_id = ensure_experiment(registry, "weights", tmp_path / "artifacts")
    preprocessor = TextPreprocessor(PreprocessConfig(lemmatize=False))
    splits = split(load_sentiment140(TWEETS), val=0.2, test=0.1)
    train = preprocess_frame(splits.train, preprocessor, "train", progress=False)
    val = preprocess_frame(splits.val, preprocessor, "val", progress=False)
    praise = pd.DataFrame(
        {
            "text": ["lovely crew, thank you", "great flight, thank you", "thank you, lovely"],
            "label": [0, 0, 0],
        }
    )
    extra = preprocess_frame(praise, preprocessor, "extra", progress=False)
    positive = {}
    with mlflow_at(registry.tracking_uri):
        for weight in (1.0, 30.0):
            family = SimpleFamily(target_precision=0.8, grid="small", min_df=1)
            with mlflow.start_run(experiment_id=experiment_id):
                (tmp_path / str(weight)).mkdir()
                estimator = family.fit(
                    with_extra(train, extra, weight, weighted=True),
                    val,
                    tmp_path / str(weight),
                    experiment_id,
                )
            positive[weight] = float(np.mean(estimator.positive_proba(extra.texts)))

    assert positive[30.0] < positive[1.0] - 0.1, positive
