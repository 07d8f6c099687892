"""Personal data against real servers (nats-server, chDB, aiosmtpd): what each text_storage
keeps in ClickHouse, in alert emails and on the bus; `airparadis data forget / export` run as a
user runs them (a subprocess), through the running store worker or on the store directly."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from email.message import Message
from typing import Any

import pytest
from faststream.nats import NatsBroker

from airparadis.wiring import Platform, build_platform
from shared import subjects
from shared.bus import publish_event
from shared.messages import FeedbackReported, TweetSubmitted
from shared.nats_server import NatsServerProcess, free_port
from shared.settings import Settings
from shared.storage import ChdbStore, Store
from tests.integration.platform import StartPlatform, rows_in
from tests.servers import Inbox, eventually, json_attachment

pytestmark = pytest.mark.integration

WRITTEN = "@bob call me on +33 6 12 34 56 78 about AP214 at 10:45, jane.doe@example.com"
SCRUBBED = "<handle> call me on <phone> about AP214 at 10:45, <email>"
RAW_BITS = ("@bob", "12 34 56", "jane.doe@example.com", "jane.doe")


async def publish_tweet(upstream: NatsBroker, text: str, tweet_id: str) -> None:
    tweet = TweetSubmitted(id=tweet_id, text=text, source="crm")
    await publish_event(upstream, tweet, subjects.TWEETS_SUBMITTED, msg_id=tweet.id)


async def publish_report(
    upstream: NatsBroker, platform: Platform, prediction_id: str, report_id: str, comment: str
) -> None:
    """A report as an upstream app publishes it: the prediction as it was served, the comment
    as written."""
    assert platform.repository is not None
    snapshot = await platform.repository.get_prediction(prediction_id)
    assert snapshot is not None
    report = FeedbackReported(
        id=report_id,
        prediction_id=prediction_id,
        correct_label="negative",
        comment=comment,
        prediction=snapshot,
    )
    await publish_event(upstream, report, subjects.FEEDBACK_REPORTED, msg_id=report.id)


def rows(store: Store, sql: str, **parameters: Any) -> list[dict[str, Any]]:
    return store.query(sql, parameters)


@pytest.mark.parametrize(
    ("storage", "kept"), [("scrubbed", SCRUBBED), ("full", WRITTEN), ("none", "")]
)
async def test_a_tweet_from_an_upstream_app_is_stored_as_the_text_storage_says(
    start_platform: StartPlatform,
    upstream: NatsBroker,
    platform_settings: Settings,
    storage: str,
    kept: str,
) -> None:
    settings = platform_settings.model_copy(update={"text_storage": storage})
    async with start_platform(settings=settings) as platform:
        await publish_tweet(upstream, WRITTEN, "t-1")
        await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")
        assert platform.store is not None
        [row] = rows(platform.store, "SELECT text, n_mentions, length FROM predictions FINAL")
    assert row["text"] == kept
    # The features were measured all the same (on the scrubbed text unless full).
    assert row["n_mentions"] == 1 and row["length"] > 0


async def test_reports_alerts_and_the_alert_email_quote_scrubbed_texts_by_default(
    start_platform: StartPlatform, upstream: NatsBroker, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    async with start_platform() as platform:
        for n in range(3):
            await publish_tweet(upstream, f"{WRITTEN} #{n}", f"t-{n}")
        await eventually(rows_in(platform, "predictions", 3), what="3 predictions")
        for n in range(3):
            await publish_report(
                upstream, platform, f"t-{n}", f"r-{n}", "reads wrong, ask jane[at]example[.]com"
            )
        await eventually(lambda: len(inbox.messages) == 1, what="the alert email")
        await eventually(rows_in(platform, "alerts", 1), what="the stored alert")
        await eventually(rows_in(platform, "feedback", 3), what="3 stored reports")
        assert platform.store is not None
        feedback = rows(platform.store, "SELECT text, comment FROM feedback FINAL")
        [alert] = rows(platform.store, "SELECT details FROM alerts FINAL")
    email = inbox.messages[0]
    reports = json_attachment(email)["details"]["reports"]
    assert {r["comment"] for r in reports} == {"reads wrong, ask <email>"}
    assert all(r["tweet"].startswith("<handle> call me on <phone>") for r in reports)
    assert {f["comment"] for f in feedback} == {"reads wrong, ask <email>"}
    assert all(f["text"].startswith(SCRUBBED) for f in feedback)
    for written in (*RAW_BITS, "jane[at]"):
        assert written not in everything_in(email)
        assert written not in alert["details"]


async def test_the_bus_keeps_no_tweet_as_an_upstream_app_wrote_it_once_processed(
    start_platform: StartPlatform, upstream: NatsBroker, platform_settings: Settings
) -> None:
    settings = platform_settings.model_copy(update={"ingress_purge_s": 5})
    js = upstream.config.connection_state.stream
    async with start_platform(settings=settings) as platform:
        await publish_tweet(upstream, WRITTEN, "t-1")
        await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")

        async def submitted_left() -> int:
            info = await js.stream_info(subjects.STREAM_TWEETS, subjects_filter=">")
            return int((info.state.subjects or {}).get(subjects.TWEETS_SUBMITTED, 0))

        async def purged() -> bool:
            return await submitted_left() == 0

        await eventually(purged, within=20, what="tweets.submitted purged once processed")
        info = await js.stream_info(subjects.STREAM_TWEETS)
        kept = [
            await js.get_msg(subjects.STREAM_TWEETS, seq=seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    assert {m.subject for m in kept} == {subjects.TWEETS_PREPROCESSED, subjects.TWEETS_SCORED}
    for message in kept:
        assert json.loads(message.data or b"")["text"] == SCRUBBED


# --- airparadis data forget / export ---


async def airparadis(
    settings: Settings, *arguments: str, nats_url: str | None
) -> tuple[int, str, str]:
    """Run the command as a user does, against the platform of `settings`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRPARADIS_")}
    environment |= {
        "AIRPARADIS_HOME": str(settings.home),
        # With no URL and nothing on this port, the command finds no running platform.
        "AIRPARADIS_NATS_PORT": str(free_port()),
    }
    if nats_url is not None:
        environment["AIRPARADIS_NATS_URL"] = nats_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airparadis",
        "--log-level",
        "WARNING",
        "data",
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def counts(output: str) -> dict[str, int]:
    return {table: int(n) for table, n in (line.split("\t") for line in output.splitlines())}


def mentions(store: Store, needle: str) -> dict[str, int]:
    """Rows of every table of the database with a text column holding `needle`."""
    columns = rows(
        store,
        "SELECT table, groupArray(name) AS names FROM system.columns"
        " WHERE database = currentDatabase() AND type LIKE '%String%' GROUP BY table",
    )
    found = {}
    for table in columns:
        holds = " OR ".join(
            f"positionCaseInsensitiveUTF8(toString({name}), {{needle:String}}) > 0"
            for name in table["names"]
        )
        [row] = rows(
            store, f"SELECT count() AS n FROM {table['table']} WHERE {holds}", needle=needle
        )
        found[table["table"]] = int(row["n"])
    return found


async def test_forget_a_text_leaves_no_row_of_any_table_that_mentions_it(
    start_platform: StartPlatform,
    upstream: NatsBroker,
    platform_settings: Settings,
    nats: NatsServerProcess,
    smtp: tuple[int, Inbox],
) -> None:
    _, inbox = smtp
    async with start_platform() as platform:
        await publish_tweet(upstream, "Jane Doe here, my bag is lost on AP214", "t-1")
        await publish_tweet(upstream, "Thanks from jane doe, the crew was great", "t-2")
        await publish_tweet(upstream, "Great crew on AP215", "t-3")
        await eventually(rows_in(platform, "predictions", 3), what="3 predictions")
        await publish_report(upstream, platform, "t-1", "r-1", "sarcasm")
        await publish_report(upstream, platform, "t-2", "r-2", "reads wrong")
        await publish_report(upstream, platform, "t-3", "r-3", "said by Jane DOE")
        await eventually(lambda: len(inbox.messages) == 1, what="the alert quoting them")
        await eventually(rows_in(platform, "alerts", 1), what="the stored alert")
        await eventually(rows_in(platform, "feedback", 3), what="the stored reports")
        assert platform.store is not None
        assert mentions(platform.store, "jane doe")["predictions"] == 2

        code, out, err = await airparadis(
            platform_settings,
            "forget",
            "--text-contains",
            "JANE DOE",
            "--by",
            "dpo-test",
            nats_url=nats.url,
        )

        assert code == 0, err
        assert counts(out) == {"predictions": 2, "feedback": 3, "alerts": 1}
        assert "the store worker" in err
        assert set(mentions(platform.store, "jane doe").values()) == {0}
        left = rows(platform.store, "SELECT id FROM predictions FINAL")
        [audit] = rows(platform.store, "SELECT * FROM audit FINAL")
    assert left == [{"id": "t-3"}]
    assert (audit["actor"], audit["action"], audit["via"]) == ("dpo-test", "forget", "store worker")
    assert (audit["predictions"], audit["feedback"], audit["alerts"]) == (2, 3, 1)
    assert audit["selector"].startswith("text_contains=sha256:")


async def test_export_prints_a_prediction_and_its_reports_and_is_audited(
    start_platform: StartPlatform,
    upstream: NatsBroker,
    platform_settings: Settings,
    nats: NatsServerProcess,
) -> None:
    async with start_platform() as platform:
        await publish_tweet(upstream, "Lost my bag again", "t-1")
        await eventually(rows_in(platform, "predictions", 1), what="the prediction")
        await publish_report(upstream, platform, "t-1", "r-1", "it is a complaint")
        await eventually(rows_in(platform, "feedback", 1), what="the report")

        code, out, err = await airparadis(
            platform_settings,
            "export",
            "--prediction",
            "t-1",
            "--by",
            "dpo-test",
            nats_url=nats.url,
        )
        unknown, _, unknown_err = await airparadis(
            platform_settings, "export", "--prediction", "t-404", nats_url=nats.url
        )
        assert platform.store is not None
        audits = rows(platform.store, "SELECT action, selector, feedback FROM audit FINAL")

    assert code == 0, err
    held = json.loads(out)
    assert held["prediction"]["id"] == "t-1"
    assert held["prediction"]["text"] == "Lost my bag again"
    assert [(r["id"], r["comment"]) for r in held["feedback"]] == [("r-1", "it is a complaint")]
    assert held["alerts"] == []
    assert unknown == 1 and "Nothing held for prediction 't-404'" in unknown_err
    assert sorted(audits, key=lambda a: a["selector"]) == [
        {"action": "export", "selector": "prediction_id=t-1", "feedback": 1},
        {"action": "export", "selector": "prediction_id=t-404", "feedback": 0},
    ]


async def test_forget_works_on_the_store_directly_when_the_platform_is_stopped(
    start_platform: StartPlatform, upstream: NatsBroker, platform_settings: Settings
) -> None:
    async with start_platform() as platform:
        await publish_tweet(upstream, "Lost my bag again", "t-1")
        await publish_tweet(upstream, "Great crew", "t-2")
        await eventually(rows_in(platform, "predictions", 2), what="2 predictions")

    code, out, err = await airparadis(
        platform_settings, "forget", "--prediction", "t-1", nats_url=None
    )
    again, _, again_err = await airparadis(
        platform_settings, "forget", "--prediction", "t-1", nats_url=None
    )
    bad, _, bad_err = await airparadis(
        platform_settings, "forget", "--before", "31/01/2026", nats_url=None
    )

    assert code == 0, err
    assert counts(out) == {"predictions": 1, "feedback": 0, "alerts": 0}
    assert "this command, on the store directly" in err
    assert again == 1 and "Nothing held for prediction 't-1'" in again_err
    assert bad == 2 and "is not a date" in bad_err
    store = ChdbStore(platform_settings.chdb_path)
    try:
        left = rows(store, "SELECT id FROM predictions FINAL")
        audits = rows(store, "SELECT via, predictions FROM audit FINAL ORDER BY at")
    finally:
        store.close()
    assert left == [{"id": "t-2"}]
    assert audits == [
        {"via": "command", "predictions": 1},
        {"via": "command", "predictions": 0},
    ]


async def test_the_gateway_minimises_and_forgets_what_an_erasure_removed(
    platform_settings: Settings, nats: NatsServerProcess
) -> None:
    import httpx

    platform = build_platform(platform_settings)
    await platform.start()
    try:
        assert platform.gateway is not None
        transport = httpx.ASGITransport(app=platform.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            answer = await client.post("/v1/predict", json={"text": WRITTEN})
            assert answer.status_code == 200, answer.text
            prediction = answer.json()
            # The answer carries the text as the platform keeps it, and what explains it too.
            assert prediction["text"] == SCRUBBED
            explained = (await client.post("/v1/explain", json={"text": WRITTEN})).json()
            assert [SCRUBBED[w["start"] : w["end"]] for w in explained["words"]] == [
                w["word"] for w in explained["words"]
            ]
            assert not any("bob" in w["word"] or "jane" in w["word"] for w in explained["words"])
            # A placeholder may be longer than what it replaces: past the limit, a clear 422.
            handles = await client.post("/v1/predict", json={"text": "@a " * 333})
            assert handles.status_code == 422
            assert "once e-mails, phones" in handles.json()["reason"]
            await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")

            code, _, err = await airparadis(
                platform_settings,
                "forget",
                "--prediction",
                prediction["id"],
                nats_url=nats.url,
            )
            assert code == 0, err

            async def gone() -> bool:
                fetched = await client.get(f"/v1/predictions/{prediction['id']}")
                return fetched.status_code == 404

            await eventually(gone, what="the gateway forgetting it too")
    finally:
        await platform.stop()


def everything_in(message: Message) -> str:
    """Every part of an email, decoded."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts.append(payload.decode("utf-8", errors="replace"))
    return "\n".join(parts)
