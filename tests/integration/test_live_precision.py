"""The precision promise on live traffic, through the real pipeline: a stream where only 20 % of
the tweets are positive (the airline's mentions are mostly complaints) is scored by a model
trained on balanced Sentiment140. In `adaptive` mode the alerter's round estimates the share of
positives, raises the threshold, infer applies it to the next tweets and the store keeps the
history; in `fixed` mode the same round raises a precision_risk alert, emailed and stored."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from faststream.nats import NatsBroker

from airparadis.wiring import Platform
from services.gateway.monitor import monitor_figures
from shared import subjects
from shared.bus import publish_event
from shared.messages import TweetSubmitted
from shared.preprocessing import PreprocessConfig
from shared.registry import Registry
from shared.settings import Settings
from shared.shift import OperatingCurve, load_curve
from tests.integration.platform import StartPlatform, rows_in
from tests.servers import Inbox, eventually, json_attachment
from training.data import balanced_sample, load_sentiment140
from training.registry import split_rows
from training.simple import train_simple

pytestmark = pytest.mark.integration

STREAM_TWEETS = 1000
POSITIVE_SHARE = 0.2


@dataclass(frozen=True)
class Trained:
    tracking_uri: str
    version: str
    threshold: float
    test: pd.DataFrame  # the version's test split: text, label


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """A simple model trained on 20,000 balanced Sentiment140 tweets, the champion of its own
    registry (the fixture tweets are too few for a meaningful operating curve)."""
    value = os.environ.get("AIRPARADIS_DATA")
    if not value or not Path(value).exists():
        pytest.skip("AIRPARADIS_DATA is not set or missing (sentiment140/sample-100k.csv.gz)")
    folder = tmp_path_factory.mktemp("precision-registry")
    registry = Registry(f"sqlite:///{folder / 'mlflow.db'}", "airparadis-sentiment")
    frame = load_sentiment140(Path(value))
    result = train_simple(
        balanced_sample(frame, 20_000, seed=1),
        preprocess=PreprocessConfig(),
        target_precision=0.9,
        registry=registry,
        artifacts_dir=folder / "artifacts",
        candidates=("logreg",),
        vectorizers=("tfidf",),
        grid="small",
        progress=False,
    )
    registry.promote(result.version)
    test = split_rows(registry, result.version, frame, "test")
    yield Trained(registry.tracking_uri, result.version, result.threshold.threshold, test)


def complaint_stream(test: pd.DataFrame, n: int, positive_share: float) -> list[str]:
    positives = test[test["label"] == 1].sample(round(n * positive_share), random_state=3)
    negatives = test[test["label"] == 0].sample(n - len(positives), random_state=3)
    tweets = pd.concat([positives, negatives]).sample(frac=1.0, random_state=4)
    return tweets["text"].astype(str).tolist()


async def publish(upstream: NatsBroker, texts: list[str], prefix: str) -> None:
    for i, text in enumerate(texts):
        tweet = TweetSubmitted(id=f"{prefix}-{i}", text=text)
        await publish_event(upstream, tweet, subjects.TWEETS_SUBMITTED, msg_id=tweet.id)


def settings_for(base: Settings, trained: Trained, mode: str) -> Settings:
    return base.model_copy(
        update={
            "mlflow_tracking_uri": trained.tracking_uri,
            "threshold_mode": mode,
            "target_precision": 0.9,
            # One round at start (nothing to judge yet), then the test calls the next.
            "check_interval_s": 3600,
            "precision_min_predictions": 200,
        }
    )


@asynccontextmanager
async def scored_stream(
    start_platform: StartPlatform, settings: Settings, upstream: NatsBroker, trained: Trained
) -> AsyncIterator[Platform]:
    """The platform running with the complaint stream scored and stored, the champion's
    operating curve in ClickHouse: ready for a check round."""
    async with start_platform(settings=settings) as platform:
        store = platform.store
        assert store is not None
        await eventually(
            lambda: load_curve(store, settings.model_name, trained.version) is not None,
            what="the champion's operating curve in ClickHouse",
        )
        texts = complaint_stream(trained.test, STREAM_TWEETS, POSITIVE_SHARE)
        await publish(upstream, texts, "complaint")
        await eventually(rows_in(platform, "predictions", STREAM_TWEETS), within=60, what="scores")
        yield platform


def test_the_logged_curve_shows_the_promise_breaking_when_positives_are_rare(
    trained: Trained,
) -> None:
    curve = Registry(trained.tracking_uri, "airparadis-sentiment").operating_curve(trained.version)
    assert curve is not None
    balanced = curve.precision(trained.threshold, 0.5)
    assert balanced > 0.85  # the promise, as trained (about the target on the test split)
    assert curve.precision(trained.threshold, POSITIVE_SHARE) < 0.8  # what the airline gets


async def test_adaptive_mode_raises_the_threshold_and_infer_applies_it(
    start_platform: StartPlatform,
    platform_settings: Settings,
    upstream: NatsBroker,
    trained: Trained,
) -> None:
    settings = settings_for(platform_settings, trained, "adaptive")
    texts = complaint_stream(trained.test, STREAM_TWEETS, POSITIVE_SHARE)
    async with scored_stream(start_platform, settings, upstream, trained) as platform:
        store, checks = platform.store, platform.checks
        assert store is not None and checks is not None

        await checks.run_once()
        await eventually(rows_in(platform, "thresholds", 1), what="the threshold history")
        [row] = store.query("SELECT * FROM thresholds FINAL")
        assert row["mode"] == "adaptive" and row["changed"]
        # Estimated without a single label. With this smoke model (ROC AUC 0.83) the EM
        # estimate on 1,000 tweets has a standard error of about 0.025: three of them.
        assert abs(row["prior"] - POSITIVE_SHARE) < 0.075
        assert row["prior_low"] < row["prior"] < row["prior_high"]
        assert row["threshold_in_use"] == pytest.approx(trained.threshold)
        assert row["threshold"] > trained.threshold  # rarer positives: a stricter threshold
        await eventually(
            lambda: platform.holder.require().threshold == pytest.approx(row["threshold"]),
            what="infer applying the new threshold",
        )

        await publish(upstream, texts[:20], "after")
        await eventually(rows_in(platform, "predictions", STREAM_TWEETS + 20), what="more scores")
        used = store.query(
            "SELECT DISTINCT threshold FROM predictions FINAL WHERE startsWith(id, 'after-')"
        )
    assert [u["threshold"] for u in used] == [pytest.approx(row["threshold"])]
    assert checks.failures == 0

    # A restarted infer takes the last threshold set, not its version's own.
    async with start_platform(("infer",), settings=settings) as restarted:
        await eventually(
            lambda: restarted.holder.require().threshold == pytest.approx(row["threshold"]),
            what="a restarted infer applying the last threshold",
        )


async def test_fixed_mode_keeps_the_threshold_and_raises_a_precision_risk_alert(
    start_platform: StartPlatform,
    platform_settings: Settings,
    upstream: NatsBroker,
    smtp: tuple[int, Inbox],
    trained: Trained,
) -> None:
    _, inbox = smtp
    settings = settings_for(platform_settings, trained, "fixed")
    async with scored_stream(start_platform, settings, upstream, trained) as platform:
        store, checks = platform.store, platform.checks
        assert store is not None and checks is not None

        raised = await checks.run_once()
        await eventually(lambda: len(inbox.messages) == 1, what="the precision alert email")
        await eventually(rows_in(platform, "alerts", 1), what="the stored alert")
        [row] = store.query("SELECT * FROM thresholds FINAL")
        assert platform.holder.require().threshold == pytest.approx(trained.threshold)
        figures = monitor_figures(store, settings.model_name, 1, None)
    assert [alert.kind for alert in raised] == ["precision_risk"]
    # /monitor draws what the round estimated, beside the threshold the tweets were scored at.
    [precision] = figures["precision"]
    assert precision["precision"] == pytest.approx(row["precision"])
    assert precision["target"] == 0.9 and precision["precision_low"] < precision["precision"]
    assert [p["positive_share"] for p in figures["prior"]] == [pytest.approx(row["prior"])]
    assert [t["threshold"] for t in figures["threshold"]] == [pytest.approx(trained.threshold)]
    assert row["mode"] == "fixed" and not row["changed"]
    details = json_attachment(inbox.messages[0])["details"]
    assert details["estimated_precision"] < 0.9 - settings.precision_risk_margin
    assert details["mode"] == "fixed" and details["tweets"] == STREAM_TWEETS
    assert "THRESHOLD_MODE=adaptive" in json_attachment(inbox.messages[0])["summary"]


def test_the_curve_of_the_test_split_matches_the_one_logged(trained: Trained) -> None:
    """The curve training logs is the one measured on the version's test split, as served."""
    registry = Registry(trained.tracking_uri, "airparadis-sentiment")
    model = registry.load(trained.version)
    measured = OperatingCurve.measure(
        trained.test["label"].to_numpy(), model.predict_proba(trained.test["text"].tolist())
    )
    logged = registry.operating_curve(trained.version)
    assert logged is not None
    assert logged.positives == measured.positives and logged.negatives == measured.negatives
    assert logged.rates(trained.threshold) == pytest.approx(measured.rates(trained.threshold))
