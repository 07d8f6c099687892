"""Shadow scoring against real servers (nats-server, chDB, MLflow on SQLite): a challenger set
while tweets flow scores every tweet submitted after the change, none before, and never changes
what the champion answers; taking the alias off stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import nats
import pytest
from click.testing import Result
from faststream.nats import NatsBroker
from typer.testing import CliRunner

from airparadis.cli import app
from shared import subjects
from shared.bus import publish_event
from shared.messages import TweetSubmitted
from shared.registry import CHALLENGER, Registry
from shared.settings import Settings
from tests.integration.platform import StartPlatform, count, rows_in
from tests.servers import eventually

pytestmark = pytest.mark.integration

TEXTS = [
    "Lovely crew on the flight to Lisbon",
    "Lost my bag again, thanks for nothing",
    "Seats were comfy and we landed early",
    "Four hours on the tarmac with no water",
]


async def publish(upstream: NatsBroker, n: int, tag: str) -> list[TweetSubmitted]:
    tweets = [TweetSubmitted(id=f"{tag}-{i}", text=TEXTS[i % len(TEXTS)]) for i in range(n)]
    for tweet in tweets:
        await publish_event(upstream, tweet, subjects.TWEETS_SUBMITTED, msg_id=tweet.id)
    return tweets


async def test_a_challenger_scores_in_shadow_only_the_tweets_after_it_was_set(
    start_platform: StartPlatform,
    upstream: NatsBroker,
    platform_settings: Settings,
    second_version: str,
) -> None:
    registry = Registry.of(platform_settings)
    async with start_platform() as platform:
        assert platform.store is not None
        before = await publish(upstream, 12, "before")
        await eventually(rows_in(platform, "predictions", 12), what="the first tweets stored")

        promotion = await asyncio.to_thread(registry.promote, second_version, CHALLENGER)
        assert promotion.announced_on == platform_settings.nats_url
        await eventually(
            lambda: (
                platform.challenger.model is not None
                and platform.challenger.model.version == second_version
            ),
            what="the challenger loaded",
        )
        after = await publish(upstream, 20, "after")
        await eventually(rows_in(platform, "predictions", 32), what="every tweet stored")
        await eventually(
            rows_in(platform, "shadow_predictions", 20), what="a shadow row per later tweet"
        )

        shadow = platform.store.query(
            "SELECT prediction_id, model_version, label, probability FROM shadow_predictions FINAL"
        )
        assert {row["prediction_id"] for row in shadow} == {t.id for t in after}
        assert not {row["prediction_id"] for row in shadow} & {t.id for t in before}
        assert {row["model_version"] for row in shadow} == {second_version}
        # The champion answered as it would alone: its own version, its own scores.
        champion = platform.holder.require()
        assert champion.version != second_version
        stored = platform.store.query(
            "SELECT id, text, model_version, probability FROM predictions FINAL"
        )
        assert {row["model_version"] for row in stored} == {champion.version}
        alone = champion.predict_proba([row["text"] for row in stored])
        for row, probability in zip(stored, alone, strict=True):
            assert row["probability"] == pytest.approx(float(probability), abs=1e-6)
        # And the challenger's scores are its own.
        challenger = platform.challenger.model
        assert challenger is not None
        by_id = {t.id: t.text for t in after}
        for row in shadow:
            expected = float(challenger.predict_proba([by_id[row["prediction_id"]]])[0])
            assert row["probability"] == pytest.approx(expected, abs=1e-6)

        # What a person deciding the promotion reads: the live comparison, from the store
        # through the running store worker (the CLI in a thread: this loop runs the platform).
        compared = await asyncio.to_thread(compare_live_command, platform_settings)
        assert compared.exit_code == 0, compared.output
        said = " ".join(compared.output.replace("\u2502", " ").split())
        assert f"v{second_version} v{champion.version} 20" in said
        assert f"airparadis models promote {second_version}" in said

        # The alias taken off: shadow scoring stops at once.
        removed = await asyncio.to_thread(registry.unset_alias, CHALLENGER)
        assert removed is not None and removed.version.version == second_version
        assert removed.announced_on == platform_settings.nats_url
        await eventually(lambda: platform.challenger.model is None, what="the challenger gone")
        await publish(upstream, 8, "later")
        await eventually(rows_in(platform, "predictions", 40), what="the last tweets stored")
        # The shadow consumer has taken and settled every tweet, and the store every shadow
        # score it was given: nothing more is on its way.
        await eventually(
            settled(platform_settings, subjects.DURABLE_SHADOW, subjects.DURABLE_STORE_SHADOW),
            what="the shadow consumers settled",
        )
        assert await count(platform, "shadow_predictions") == 20
        assert registry.alias(CHALLENGER) is None


def compare_live_command(settings: Settings) -> Result:
    environment = {
        "AIRPARADIS_HOME": str(settings.home),
        "AIRPARADIS_NATS_URL": settings.nats_url or "",
        "AIRPARADIS_MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    return CliRunner().invoke(
        app, ["--log-level", "WARNING", "models", "compare", "--live"], env=environment
    )


def settled(settings: Settings, *durables: str) -> Callable[[], Awaitable[bool]]:
    """A condition: each durable consumer of the TWEETS stream has nothing pending or unacked."""

    async def check() -> bool:
        assert settings.nats_url is not None
        nc = await nats.connect(settings.nats_url)
        try:
            js = nc.jetstream()
            for durable in durables:
                info = await js.consumer_info(subjects.STREAM_TWEETS, durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True
        finally:
            await nc.close()

    return check
