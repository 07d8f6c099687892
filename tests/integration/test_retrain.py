"""The training side of the loop: the challenger alias set and unset by hand (and announced as
such on the bus), and `airparadis retrain` from stored reports to a new challenger, the champion
left alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import nats
import pandas as pd
import pytest
from faststream.nats import NatsBroker

from shared import subjects
from shared.messages import FeedbackReported, ModelPromoted, PredictionSnapshot
from shared.nats_server import NatsServerProcess
from shared.registry import CHALLENGER, CHAMPION, PROMOTION_REASON_TAG, Registry
from shared.scrub import TextPolicy
from shared.settings import Settings
from shared.storage import ChdbStore, apply_migrations, feedback_row
from tests.integration.registry import MODEL, Home
from training.registry import INDOMAIN_AT_THRESHOLD_PREFIX

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures"
TWEETS = FIXTURES / "airline_tweets.csv"  # stands in for Sentiment140: 40 tweets, quick
REPORTS = FIXTURES / "airline_reports.csv"
LABELS = {0: "negative", 4: "positive"}


def said(output: str) -> str:
    return " ".join(output.split())


def holder(home: Home, alias: str) -> str | None:
    found = home.registry.alias(alias)
    return found.version if found else None


def test_the_challenger_alias_is_set_by_hand_and_unset(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.train(TWEETS, "logreg")
    home.train(TWEETS, "nb")
    assert home.run("models", "promote", "1").exit_code == 0

    made = home.run("models", "promote", "2", "--alias", "challenger")

    assert made.exit_code == 0, made.output
    assert "v2 is the challenger: scored in shadow beside the champion v1" in said(made.output)
    assert (holder(home, CHAMPION), holder(home, CHALLENGER)) == ("1", "2")
    listed = home.run("models", "list")
    assert any(
        "challenger" in line and line.split("│")[1].strip() == "2"
        for line in listed.output.splitlines()
        if line.startswith("│")
    )
    assert home.registry.version("2").tags[PROMOTION_REASON_TAG] == (
        "set by `airparadis models promote`"
    )

    the_champion = home.run("models", "promote", "1", "--alias", "challenger")
    judged = home.run("models", "promote", "2", "--alias", "challenger", "--force")
    unset = home.run("models", "unset-alias", "challenger")
    again = home.run("models", "unset-alias", "challenger")
    champion = home.run("models", "unset-alias", "champion")

    assert the_champion.exit_code == 1 and "version 1 is the champion" in said(the_champion.output)
    assert judged.exit_code == 2 and "a challenger is not judged" in said(judged.output)
    assert unset.exit_code == 0, unset.output
    assert "v2 is no longer the challenger" in said(unset.output)
    assert again.exit_code == 0 and "nothing to unset" in said(again.output)
    assert champion.exit_code == 1 and "cannot be unset" in said(champion.output)
    assert (holder(home, CHAMPION), holder(home, CHALLENGER)) == ("1", None)

    # A challenger made champion is the challenger no more.
    assert home.run("models", "promote", "2", "--alias", "challenger").exit_code == 0
    promoted = home.run("models", "promote", "2", "--force")

    assert promoted.exit_code == 0, promoted.output
    assert "no longer the challenger" in said(promoted.output)
    assert (holder(home, CHAMPION), holder(home, CHALLENGER)) == ("2", None)


async def test_a_challenger_is_announced_as_one_and_so_is_its_removal(
    nats: NatsServerProcess,
    upstream: NatsBroker,
    platform_settings: Settings,
    second_version: str,
) -> None:
    listener = await nats_client(nats.url)
    heard = await listener.subscribe(subjects.MODELS_PROMOTED)
    await listener.flush()
    registry = Registry.of(platform_settings)
    champion = registry.champion()
    assert champion is not None and champion.version != second_version
    try:
        made = await asyncio.to_thread(registry.promote, second_version, CHALLENGER)
        first = ModelPromoted.model_validate_json((await heard.next_msg(timeout=10)).data)
        removed = await asyncio.to_thread(registry.unset_alias, CHALLENGER)
        second = ModelPromoted.model_validate_json((await heard.next_msg(timeout=10)).data)
    finally:
        await asyncio.to_thread(registry.unset_alias, CHALLENGER)
        await listener.close()

    assert made.announced_on == nats.url
    assert (first.alias, first.version, first.removed) == (CHALLENGER, second_version, False)
    assert removed is not None and removed.announced_on == nats.url
    assert (second.alias, second.version, second.removed) == (CHALLENGER, second_version, True)
    still = registry.champion()
    assert still is not None and still.version == champion.version


async def nats_client(url: str) -> nats.aio.client.Client:
    return await nats.connect(url)


def store_reports(settings: Settings, reports: pd.DataFrame) -> None:
    """Reports as the store worker keeps them: each with the prediction it is about."""
    rows = []
    for index, report in enumerate(reports.itertuples()):
        reported_at = pd.Timestamp(report.reported_at).to_pydatetime()
        correct = LABELS[int(report.target)] if report.target in (0, 4) else None
        snapshot = PredictionSnapshot(
            text=str(report.text),
            label="positive" if correct == "negative" else "negative",
            probability=0.5,
            threshold=0.5,
            model_name=MODEL,
            model_version="1",
            scored_at=reported_at - timedelta(minutes=5),
        )
        event = FeedbackReported(
            id=f"r-{index}",
            prediction_id=str(report.prediction_id),
            correct_label=correct,  # type: ignore[arg-type]
            reported_at=reported_at,
            prediction=snapshot,
        )
        rows.append(feedback_row(event, TextPolicy()))
    store = ChdbStore(settings.chdb_path)
    try:
        apply_migrations(store, settings.retention_days)
        store.insert("feedback", rows)
    finally:
        store.close()


def test_retrain_registers_a_challenger_with_in_domain_figures_and_leaves_the_champion(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    home.train(TWEETS, "logreg")
    assert home.run("models", "promote", "1").exit_code == 0
    reports = pd.read_csv(REPORTS)
    unlabelled = reports.head(2).assign(target=-1, prediction_id=["q-1", "q-2"])
    earlier = reports.head(1).assign(
        target=4 - reports["target"].head(1), reported_at="2026-02-01T00:00:00+00:00"
    )
    store_reports(Settings(home=home.root), pd.concat([reports, unlabelled, earlier]))

    result = home.run("retrain", "--family", "simple", "--smoke", "--data", str(TWEETS))

    assert result.exit_code == 0, result.output
    output = said(result.output)
    assert "wrote 20 training rows" in output and "from 21 reports with a correct label" in output
    assert "1 earlier reports of a prediction reported again left out" in output
    (exported,) = (home.root / "feedback").glob("feedback-*.csv")
    assert len(pd.read_csv(exported)) == 20
    assert (holder(home, CHAMPION), holder(home, CHALLENGER)) == ("1", "2")
    version = home.registry.version("2")
    for name in ("precision", "recall", "accuracy"):
        assert f"{INDOMAIN_AT_THRESHOLD_PREFIX}{name}" in version.tags
    assert version.tags["indomain.tweets"] == "6"
    assert version.tags[PROMOTION_REASON_TAG].startswith("retrained with 20 reports")
    assert version.run_id is not None
    params = home.registry.client.get_run(version.run_id).data.params
    assert params["data.airline_feedback.rows"] == "20"
    # What to look at, side by side with the champion, and the command that decides.
    assert "v2 (candidate)" in output and "v1 (champion)" in output
    assert "the 6 newest reports (never trained on)" in output
    assert "/monitor" in output and "Air Paradis: quality" in output
    assert "airparadis models promote 2" in output


def test_retrain_without_reports_says_so_and_trains_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.train(TWEETS, "logreg")
    store_reports(Settings(home=home.root), pd.DataFrame(columns=["target"]))

    result = home.run("retrain", "--family", "simple", "--smoke", "--data", str(TWEETS))

    assert result.exit_code == 1
    assert "Not retrained: no report with a correct label yet" in said(result.output)
    assert len(home.registry.versions()) == 1
