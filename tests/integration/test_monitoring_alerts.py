"""Drift and error-rate monitoring against real servers: the reference copied into ClickHouse
at promotion, the OOV rate stored with each prediction, and the scheduled checks raising,
emailing and storing drift and error-rate alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from faststream.nats import NatsBroker

from airparadis.wiring import alerter_bucket
from services.alerter.state import KvAlerterState
from shared import subjects
from shared.bus import publish_event
from shared.drift import psi_by_feature, reference_rows, save_reference
from shared.messages import ModelPromoted, TweetSubmitted
from shared.registry import Registry, publish_promotion
from shared.settings import Settings
from tests.drift import has_reference
from tests.integration.platform import StartPlatform, rows_in
from tests.servers import Inbox, eventually, json_attachment

pytestmark = pytest.mark.integration

MODEL = "airparadis-sentiment"
DRIFTING = "41"  # a version only these tests' rows use


def _predictions(n: int, *, version: str, rng: np.random.Generator) -> list[dict[str, object]]:
    """Rows of the last minutes whose probabilities sit near 1 (the reference is uniform)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        scored_at = now - timedelta(seconds=int(rng.integers(5, 600)))
        probability = float(rng.uniform(0.95, 1.0))
        rows.append(
            {
                "id": f"drift-{version}-{i}",
                "text": "Loved it",
                "source": "api",
                "label": "positive",
                "probability": probability,
                "threshold": 0.5,
                "model_name": MODEL,
                "model_version": version,
                "submitted_at": scored_at - timedelta(milliseconds=20),
                "scored_at": scored_at,
                "latency_ms": 20.0,
                "batch_size": 1,
                "length": 8,
                "n_words": 2,
                "n_urls": 0,
                "n_mentions": 0,
                "n_hashtags": 0,
                "n_emojis": 0,
                "oov_rate": None,
            }
        )
    return rows


def _reports(predictions: list[dict[str, object]], n: int) -> list[dict[str, object]]:
    snapshot = ("text", "label", "probability", "threshold", "model_name", "model_version")
    return [
        {
            "id": f"report-{p['id']}",
            "prediction_id": p["id"],
            "correct_label": "negative",
            "comment": "sarcasm",
            "reported_at": datetime.now(UTC),
            "scored_at": p["scored_at"],
            **{key: p[key] for key in snapshot},
        }
        for p in predictions[:n]
    ]


async def test_drift_and_error_rate_alerts_fire_once_are_emailed_and_stored(
    start_platform: StartPlatform, platform_settings: Settings, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    settings = platform_settings.model_copy(
        update={"check_interval_s": 1, "check_cooldown_s": 3600, "error_rate_min_predictions": 100}
    )
    rng = np.random.default_rng(7)
    predictions = _predictions(400, version=DRIFTING, rng=rng)
    async with start_platform(("store", "alerter"), settings=settings) as platform:
        store = platform.store
        assert store is not None
        uniform = rng.uniform(0.0, 1.0, 3000)
        save_reference(store, reference_rows(uniform, {}, MODEL, DRIFTING))
        store.insert("predictions", predictions)
        store.insert("feedback", _reports(predictions, 40))  # 10 % reported wrong

        checks = platform.checks
        assert checks is not None
        await eventually(lambda: len(inbox.messages) >= 2, within=30, what="two alert emails")
        await eventually(rows_in(platform, "alerts", 2), what="two stored alerts")
        # Rounds go on every second; the cooldown keeps them quiet.
        seen = checks.rounds
        await eventually(lambda: checks.rounds >= seen + 3, what="three more rounds")
        assert await checks.run_once() == []
        rows = store.query("SELECT kind, summary FROM alerts FINAL ORDER BY kind")
    assert checks.failures == 0
    assert len(inbox.messages) == 2
    assert [row["kind"] for row in rows] == ["drift", "error_rate"]
    alerts = {json_attachment(m)["kind"]: json_attachment(m) for m in inbox.messages}
    drift = alerts["drift"]["details"]
    assert drift["model_version"] == DRIFTING and drift["feature"] == "probability"
    assert drift["psi"] >= settings.drift_psi_alert
    error = alerts["error_rate"]["details"]
    assert (error["reported"], error["predictions"]) == (40, 400)
    assert error["error_rate"] == pytest.approx(0.1)
    assert "10.0%" in rows[1]["summary"]


async def test_no_alert_on_traffic_like_the_reference_and_few_reports(
    start_platform: StartPlatform, platform_settings: Settings, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    settings = platform_settings.model_copy(update={"check_interval_s": 1})
    rng = np.random.default_rng(8)
    predictions = _predictions(400, version=DRIFTING, rng=rng)
    async with start_platform(("store", "alerter"), settings=settings) as platform:
        store = platform.store
        assert store is not None
        # The reference is the traffic's own distribution: no drift.
        probabilities = [float(p["probability"]) for p in predictions]  # type: ignore[arg-type]
        save_reference(store, reference_rows(probabilities, {}, MODEL, DRIFTING))
        store.insert("predictions", predictions)
        store.insert("feedback", _reports(predictions, 4))  # 1 %: under the 5 % alert
        checks = platform.checks
        assert checks is not None
        await eventually(lambda: checks.rounds >= 3, what="3 rounds")
        # The figures were there to judge: the PSI is computed, and low.
        now = datetime.now(UTC)
        psi = psi_by_feature(store, now - timedelta(hours=1), now, MODEL, DRIFTING)
        assert 0 <= psi["probability"] < 0.1
        assert await checks.run_once() == []
    assert checks.failures == 0
    assert inbox.messages == []


async def test_the_champion_reference_is_stored_at_start_and_a_promoted_one_at_once(
    start_platform: StartPlatform,
    platform_settings: Settings,
    registry: str,
    second_version: str,
) -> None:
    champion = Registry(registry, MODEL).reference("1")
    assert champion is not None, "training logs the reference with the version"
    async with start_platform(("store",)) as platform:
        store = platform.store
        assert store is not None
        await eventually(lambda: has_reference(store, MODEL, "1"), what="the champion reference")
        assert not has_reference(store, MODEL, second_version)
        Registry(registry, MODEL).promote(second_version)
        await publish_promotion(
            platform_settings,
            platform_settings.nats_url or "",
            ModelPromoted(model_name=MODEL, version=second_version),
        )
        await eventually(
            lambda: has_reference(store, MODEL, second_version), what="the promoted reference"
        )
        stored = store.query(
            "SELECT feature, sum(share) AS total, any(observations) AS n FROM drift_reference FINAL"
            " WHERE model_version = {v:String} GROUP BY feature ORDER BY feature",
            {"v": second_version},
        )
    features = {row["feature"]: row for row in stored}
    # The fixture model is TF-IDF: it has a vocabulary, so the OOV rate has a reference too.
    assert {"probability", "length", "oov_rate"} <= set(features)
    assert all(row["total"] == pytest.approx(1.0) for row in stored)


async def test_infer_stores_the_oov_rate_of_each_prediction(
    start_platform: StartPlatform, upstream: NatsBroker
) -> None:
    async with start_platform(("preprocess", "infer", "store")) as platform:
        known = TweetSubmitted(text="great crew great flight")
        unknown = TweetSubmitted(text="zzxqv blorptastic wibblewobble")
        for tweet in (known, unknown):
            await publish_event(upstream, tweet, subjects.TWEETS_SUBMITTED, msg_id=tweet.id)
        await eventually(rows_in(platform, "predictions", 2), what="2 predictions")
        assert platform.store is not None
        rows = platform.store.query("SELECT id, oov_rate FROM predictions FINAL")
    rates = {row["id"]: row["oov_rate"] for row in rows}
    assert rates[unknown.id] == pytest.approx(1.0)
    assert rates[known.id] < 0.5


async def test_a_cooldown_claimed_in_kv_holds_and_can_be_given_back(
    platform_settings: Settings, upstream: NatsBroker
) -> None:
    state = KvAlerterState(alerter_bucket(upstream))
    now = datetime.now(UTC)

    assert await state.claim_cooldown("drift", now, 3600)
    assert not await state.claim_cooldown("drift", now + timedelta(minutes=5), 3600)
    assert await state.claim_cooldown("error_rate", now, 3600)
    await state.release_cooldown("drift", now)  # its alert could not be published
    assert await state.claim_cooldown("drift", now + timedelta(minutes=6), 3600)
    await state.release_cooldown("drift", now)  # an older claim: the newer one stands
    assert not await state.claim_cooldown("drift", now + timedelta(minutes=7), 3600)
