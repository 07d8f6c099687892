"""`airparadis train simple --smoke` and the registry commands against MLflow on SQLite."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from airparadis.cli import app
from shared.registry import (
    CHAMPION,
    CHAMPION_REASON_TAG,
    HOLDOUT_RUN_TAG,
    PREVIOUS,
    PROMOTION_REASON_TAG,
    Registry,
)
from tests.drift import reference_shares
from tests.integration.registry import LOGGED_PLOTS, MODEL, Home, logged_files
from training.registry import (
    TEST_AT_THRESHOLD_PREFIX,
    compare_on_holdout,
    compare_versions,
    read_holdout,
)

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "airline_tweets.csv"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A registry holding version 1: a smoke training of two candidates on the fixture tweets."""
    home = Home(tmp_path_factory.mktemp("home"))
    home.train(FIXTURE)
    return home


@pytest.fixture
def rivals(tmp_path: Path) -> Home:
    """Version 1 trained on the fixture tweets, version 2 on the same tweets with their labels
    swapped: a model that calls the negative tweets positive."""
    swapped = tmp_path / "swapped.csv"
    frame = pd.read_csv(FIXTURE)
    frame["target"] = 4 - frame["target"]
    frame.to_csv(swapped, index=False)
    home = Home(tmp_path / "home")
    home.train(FIXTURE, candidates="logreg")
    home.train(swapped, candidates="logreg")
    return home


def said(result: Result) -> str:
    """What a command printed, on one line (the console wraps long messages)."""
    return " ".join(result.output.split())


def row_of(result: Result, version: str) -> str:
    """The line of a printed table whose first cell is version."""
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    return next(row for row in rows if row.split("│")[1].strip() == version)


def register_with_precision(home: Home, precision: float) -> str:
    """A new version of the trained model whose run recorded the given test precision."""
    client = Registry(home.tracking_uri, MODEL).client
    first = client.get_model_version(MODEL, "1")
    assert first.run_id is not None
    experiment_id = client.get_run(first.run_id).info.experiment_id
    run = client.create_run(experiment_id, run_name=f"precision-{precision}")
    client.log_metric(run.info.run_id, f"{TEST_AT_THRESHOLD_PREFIX}precision", precision)
    client.set_terminated(run.info.run_id)
    storage = client.get_model_version_download_uri(MODEL, first.version)
    version = client.create_model_version(
        MODEL, storage, run_id=run.info.run_id, tags={"family": "simple"}
    )
    return str(version.version)


def alias_holder(home: Home, alias: str) -> str | None:
    holder = Registry(home.tracking_uri, MODEL).alias(alias)
    return holder.version if holder else None


def test_smoke_training_registers_one_version_with_a_nested_run_per_candidate(
    home: Home,
) -> None:
    client = Registry(home.tracking_uri, MODEL).client
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    assert version.run_id is not None
    run = client.get_run(version.run_id)
    nested = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )

    assert sorted(candidate.info.run_name for candidate in nested) == ["tfidf-logreg", "tfidf-nb"]
    for candidate in nested:
        assert any(key.startswith("best.clf__") for key in candidate.data.params)
        for metric in ("cv.precision", "cv.roc_auc", "val.at_threshold.recall", "threshold"):
            assert metric in candidate.data.metrics
    assert run.data.tags["family"] == "simple"
    assert run.data.params["preprocess.lemmatize"] == "False"
    assert run.data.params["preprocess.remove_stopwords"] == "True"
    assert run.data.params["candidates"] == "logreg,nb"
    assert run.data.params["search.refit"] == "precision"
    for metric in ("test.at_threshold.precision", "test.at_0.5.accuracy", "train_seconds"):
        assert metric in run.data.metrics
    assert logged_files(client, run.info.run_id, "plots") == LOGGED_PLOTS
    assert logged_files(client, run.info.run_id, "data") == {"data/split.csv.gz"}
    assert version.tags["candidate"] in {"tfidf-logreg", "tfidf-nb"}
    assert version.tags["data.n_train"] == "32"
    assert "test.at_threshold.precision" in version.tags


def test_compare_lists_every_version_with_its_test_figures(home: Home) -> None:
    result = home.run("models", "compare")

    assert result.exit_code == 0, result.output
    (summary,) = [
        s for s in compare_versions(Registry(home.tracking_uri, MODEL)) if s.version == "1"
    ]
    assert summary.family == "simple"
    assert summary.n_train == 32
    assert set(summary.test_at_threshold) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
    }
    assert summary.latency_ms is not None and summary.latency_ms > 0
    assert summary.size_bytes is not None and summary.size_bytes > 0
    assert summary.calibration is not None
    assert summary.ece is not None and summary.brier is not None
    assert "simple" in result.output
    assert f"{summary.test_at_threshold['precision']:.3f}" in result.output
    assert "ROC AUC" in result.output
    assert "ECE" in result.output and "Brier" in result.output
    row = row_of(result, "1")
    assert f"{summary.ece:.3f}" in row and f"{summary.brier:.3f}" in row
    assert summary.calibration in row


def test_promote_refuses_a_version_less_precise_on_the_same_holdout_unless_forced(
    rivals: Home,
) -> None:
    assert rivals.run("models", "promote", "1").exit_code == 0
    expected = compare_on_holdout(rivals.registry, "2", "1", read_holdout(FIXTURE))
    assert expected.champion is not None and expected.champion.precision is not None
    assert expected.candidate.precision is not None
    assert expected.candidate.precision < expected.champion.precision, "swapped labels do worse"

    refused = rivals.run("models", "promote", "2", "--holdout", str(FIXTURE))

    assert refused.exit_code == 1
    output = said(refused)
    assert "Holdout: 40 tweets (20 positive) from" in output and FIXTURE.name in output
    assert "v2 (candidate)" in output and "v1 (champion)" in output
    for scored in (expected.candidate, expected.champion):
        assert f"{scored.at_threshold['precision']:.4f}" in output
        assert f"{scored.at_threshold['roc_auc']:.4f}" in output
    assert "Not promoted: version 2 has holdout precision" in output
    assert "--force" in output
    assert alias_holder(rivals, CHAMPION) == "1"

    forced = rivals.run("models", "promote", "2", "--holdout", str(FIXTURE), "--force")

    assert forced.exit_code == 0, forced.output
    assert alias_holder(rivals, CHAMPION) == "2"
    assert alias_holder(rivals, PREVIOUS) == "1"
    reason = rivals.registry.version("2").tags[PROMOTION_REASON_TAG]
    assert reason.startswith("forced: version 2 has holdout precision")
    assert f"{expected.candidate.precision:.4f}" in reason
    assert "on 40 holdout tweets from" in reason
    model = rivals.registry.client.get_registered_model(MODEL)
    assert model.tags[CHAMPION_REASON_TAG] == reason


def test_promote_judges_on_the_frozen_holdout_not_on_the_recorded_figures(home: Home) -> None:
    assert home.run("models", "promote", "1", "--force").exit_code == 0
    recorded = home.registry.version("1").tags[f"{TEST_AT_THRESHOLD_PREFIX}precision"]
    holdout = home.registry.holdout()
    assert holdout is not None
    # The same model, recording a lower test precision: on the common holdout it is as good.
    copy = register_with_precision(home, float(recorded) - 0.1)

    result = home.run("models", "promote", copy)

    assert result.exit_code == 0, result.output
    output = said(result)
    assert f"Holdout: {len(holdout)} tweets" in output
    assert "from test split of version 1" in output
    assert alias_holder(home, CHAMPION) == copy
    reason = home.registry.version(copy).tags[PROMOTION_REASON_TAG]
    assert reason.startswith("holdout precision")
    assert home.registry.client.get_registered_model(MODEL).tags[CHAMPION_REASON_TAG] == reason


def test_without_a_holdout_promote_compares_the_recorded_test_figures(home: Home) -> None:
    assert home.run("models", "promote", "1", "--force").exit_code == 0
    recorded = home.registry.version("1").tags[f"{TEST_AT_THRESHOLD_PREFIX}precision"]
    worse = register_with_precision(home, float(recorded) - 0.1)
    client = home.registry.client
    holdout_run = client.get_registered_model(MODEL).tags[HOLDOUT_RUN_TAG]
    client.delete_registered_model_tag(MODEL, HOLDOUT_RUN_TAG)
    try:
        refused = home.run("models", "promote", worse)
        forced = home.run("models", "promote", worse, "--force")
    finally:
        client.set_registered_model_tag(MODEL, HOLDOUT_RUN_TAG, holdout_run)

    assert refused.exit_code == 1
    assert "Not on a common holdout" in said(refused)
    assert "has test precision" in said(refused)
    assert forced.exit_code == 0, forced.output
    assert alias_holder(home, CHAMPION) == worse
    reason = home.registry.version(worse).tags[PROMOTION_REASON_TAG]
    assert reason.endswith("(recorded test figures, not on a common holdout)")


def test_models_list_and_compare_show_the_champion_alias(home: Home) -> None:
    assert home.run("models", "promote", "1", "--force").exit_code == 0

    listed = home.run("models", "list")
    compared = home.run("models", "compare")

    assert listed.exit_code == 0, listed.output
    assert compared.exit_code == 0, compared.output
    assert "simple" in listed.output
    assert CHAMPION in row_of(listed, "1")
    assert CHAMPION in row_of(compared, "1")
    # The languages its training data was in (Sentiment140: English), recorded at training.
    assert "languages" in listed.output
    assert "en" in [cell.strip() for cell in row_of(listed, "1").split("│")]
    assert home.registry.version("1").tags["languages"] == "en"


def test_evaluate_prints_the_metrics_at_half_and_at_the_threshold(home: Home) -> None:
    result = home.run("models", "evaluate", "1", "--data", str(FIXTURE))

    assert result.exit_code == 0, result.output
    assert "on 40 tweets" in result.output
    assert "at 0.5" in result.output
    assert "at threshold" in result.output
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
        assert metric in result.output


def test_reference_rebuilds_the_drift_reference_from_the_version_split(home: Home) -> None:
    logged = Registry(home.tracking_uri, MODEL).reference("1")
    assert logged is not None, "training logs a reference with every version"

    result = home.run("models", "reference", "1", "--data", str(FIXTURE))

    assert result.exit_code == 0, result.output
    assert "probability" in result.output and "oov_rate" in result.output
    rebuilt = Registry(home.tracking_uri, MODEL).reference("1")
    assert rebuilt is not None
    # Same split, same model: the same shares, built anew.
    before, after = reference_shares(logged), reference_shares(rebuilt)
    assert after.keys() == before.keys()
    for feature, shares in before.items():
        assert after[feature] == pytest.approx(shares), feature
    assert rebuilt[0]["created_at"] > logged[0]["created_at"]


def test_reference_refuses_a_file_the_version_was_not_trained_on(
    home: Home, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    other.write_text("target,text\n4,Lovely crew\n0,Lost my bag\n", encoding="utf-8")

    result = home.run("models", "reference", "1", "--data", str(other))

    assert result.exit_code == 1
    assert "the file it was trained on" in said(result)


@pytest.mark.parametrize(
    "command",
    [
        ("models", "evaluate", "99", "--data", str(FIXTURE)),
        ("models", "promote", "99"),
        ("models", "reference", "99", "--data", str(FIXTURE)),
        ("models", "evaluate", "1", "--data", "/no/such/file.csv"),
        ("models", "promote", "1", "--holdout", "/no/such/file.csv"),
    ],
    ids=["evaluate", "promote", "reference", "missing file", "missing holdout file"],
)
def test_a_mistake_ends_with_its_reason_not_a_traceback(home: Home, command: tuple[str]) -> None:
    result = home.run(*command)

    assert result.exit_code == 1
    assert "no version 99" in result.output or "no such file" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["models", "list"], ["models", "compare"]])
def test_a_read_command_where_nothing_was_trained_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "elsewhere" / ".airparadis"
    env = {"AIRPARADIS_HOME": str(home), "AIRPARADIS_MLFLOW_TRACKING_URI": ""}
    result = CliRunner().invoke(app, ["--log-level", "WARNING", *command], env=env)
    assert result.exit_code == 1
    said = "".join(result.output.split())  # the console wraps long lines, paths included
    assert "Nomodelregistryin" in said and str(home) in said
    assert not home.exists()
