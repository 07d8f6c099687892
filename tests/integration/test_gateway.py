"""The HTTP API over the real pipeline (nats-server, the workers in this process, chDB, the
fixture model): answers come back through the bus, and say what happened when they cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from airparadis.wiring import Platform
from shared.nats_server import NatsServerProcess
from shared.settings import Settings
from tests.integration.platform import gateway_client, rows_in, started
from tests.servers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def platform(platform_settings: Settings) -> AsyncIterator[Platform]:
    async with started(platform_settings) as running:
        yield running


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(platform) as c:
        yield c


async def test_predict_answers_through_the_pipeline_and_the_answer_is_stored(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    response = await client.post("/v1/predict", json={"text": "I love Air Paradis"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in {"positive", "negative"}
    assert 0 <= body["probability"] <= 1
    assert body["model_name"] == "airparadis-sentiment"
    assert body["model_version"] == "1"
    await eventually(rows_in(platform, "predictions", 1), what="the stored prediction")
    stored = await client.get(f"/v1/predictions/{body['id']}")
    assert stored.status_code == 200
    assert {k: stored.json()[k] for k in ("id", "label", "probability")} == {
        k: body[k] for k in ("id", "label", "probability")
    }


async def test_predict_a_list_keeps_the_order(client: httpx.AsyncClient) -> None:
    texts = ["great crew", "lost luggage", "amazing seats"]
    response = await client.post("/v1/predict", json={"texts": texts})
    assert response.status_code == 200
    assert [p["text"] for p in response.json()["predictions"]] == texts


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   "}, "empty"),
        ({"text": "a" * 1001}, "1000"),
        ({}, "exactly one"),
        ({"text": "a", "texts": ["b"]}, "exactly one"),
        ({"text": None, "texts": ["b"]}, "null"),
        ({"texts": []}, "texts"),
        ({"texts": ["a"] * 65}, "texts"),
        ({"text": 42}, "text"),
        ({"text": "\u200b\u200b"}, "invisible"),
    ],
)
async def test_bad_predict_requests_get_422_with_a_reason(
    client: httpx.AsyncClient, body: dict[str, object], reason: str
) -> None:
    response = await client.post("/v1/predict", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert reason in response.json()["reason"]


async def test_invalid_utf8_body_gets_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/predict",
        content=b'{"text": "caf\xe9 \xff"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


async def test_text_that_normalises_to_nothing_gets_422_from_the_pipeline(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/predict", json={"text": "&#8203;"})  # a zero-width space
    assert response.status_code == 422
    assert response.json()["error"] == "unscorable"
    assert "empty" in response.json()["reason"]


async def test_feedback_on_a_served_prediction_is_stored(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    prediction = (await client.post("/v1/predict", json={"text": "great"})).json()
    response = await client.post(
        "/v1/feedback",
        json={"prediction_id": prediction["id"], "correct_label": "negative", "comment": "sarcasm"},
    )
    assert response.status_code == 202
    await eventually(rows_in(platform, "feedback", 1), what="the stored report")
    assert platform.store is not None
    [stored] = platform.store.query("SELECT prediction_id, label, comment FROM feedback FINAL")
    assert stored == {
        "prediction_id": prediction["id"],
        "label": prediction["label"],
        "comment": "sarcasm",
    }


async def test_feedback_on_an_unknown_prediction_gets_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/feedback", json={"prediction_id": "nope"})
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_prediction",
        "reason": "no prediction with id 'nope'",
    }


async def test_feedback_with_a_bad_label_gets_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/feedback", json={"prediction_id": "x", "correct_label": "meh"}
    )
    assert response.status_code == 422
    assert "correct_label" in response.json()["reason"]


async def test_healthz_says_the_process_is_up_and_connected(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["bus"]["status"] == "connected"


async def test_readyz_checks_bus_store_model_and_consumers(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    assert platform.consumers is not None
    await platform.consumers.sample()
    answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["checks"]) == {"nats", "store", "model", "consumers"}


async def test_third_report_on_three_predictions_says_the_team_was_notified(
    client: httpx.AsyncClient,
) -> None:
    answers = []
    for text in ("great", "fine", "nice"):
        prediction = (await client.post("/v1/predict", json={"text": text})).json()
        reported = await client.post(
            "/v1/feedback?wait_alert_ms=3000", json={"prediction_id": prediction["id"]}
        )
        answers.append(reported.json())
    assert [a["team_notified"] for a in answers] == [False, False, True]
    assert answers[2]["alert_id"].startswith("wrong-")


async def test_by_default_the_third_report_waits_for_its_alert(client: httpx.AsyncClient) -> None:
    """No wait_alert_ms: the answer waits up to a second, enough for the alerter here (the
    alert comes within tens of milliseconds), so the third report says the team knows."""
    answers = []
    for text in ("lovely", "smooth", "tasty"):
        prediction = (await client.post("/v1/predict", json={"text": text})).json()
        reported = await client.post("/v1/feedback", json={"prediction_id": prediction["id"]})
        answers.append(reported.json())
    assert [a["team_notified"] for a in answers] == [False, False, True]


async def test_three_reports_on_one_prediction_notify_nobody(client: httpx.AsyncClient) -> None:
    prediction = (await client.post("/v1/predict", json={"text": "great"})).json()
    answers = [
        (
            await client.post(
                "/v1/feedback?wait_alert_ms=500", json={"prediction_id": prediction["id"]}
            )
        ).json()
        for _ in range(3)
    ]
    assert [a["team_notified"] for a in answers] == [False, False, False]


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_prediction(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    headers = {"Idempotency-Key": "draft-42"}
    first = await client.post("/v1/predict", json={"text": "Delayed again"}, headers=headers)
    again = await client.post("/v1/predict", json={"text": "Delayed again"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await client.post("/v1/predict", json={"text": "Something else"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    await eventually(rows_in(platform, "predictions", 1), what="one stored prediction")
    assert platform.store is not None
    assert platform.store.query("SELECT count() AS n FROM predictions") == [{"n": 1}]


async def test_get_an_unknown_or_malformed_prediction_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/predictions/nope")).status_code == 404
    assert (await client.get("/v1/predictions/a%20b")).status_code == 422


async def test_a_body_over_the_limit_gets_413(client: httpx.AsyncClient) -> None:
    huge = {"text": "a" * 2_000_000}
    response = await client.post("/v1/predict", json=huge)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


async def test_a_wrong_method_gets_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/predict", json={"text": "x"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_with_the_bus_gone_predict_gets_503_and_nothing_is_stored(
    client: httpx.AsyncClient, platform: Platform, nats: NatsServerProcess
) -> None:
    nats.stop()
    await eventually(lambda: not platform.connection.connected, what="the lost connection")
    response = await client.post("/v1/predict", json={"text": "anyone there?"})
    assert response.status_code == 503
    assert response.json()["error"] == "bus_unavailable"
    assert int(response.headers["retry-after"]) > 0
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["nats"]["ok"] is False
    assert (await client.get("/healthz")).status_code == 200  # alive, and reconnecting
    nats.start()
    await eventually(lambda: platform.connection.connected, within=30, what="the reconnection")
    again = await client.post("/v1/predict", json={"text": "back again?"})
    assert again.status_code == 200, again.text
    await eventually(rows_in(platform, "predictions", 1), what="only the accepted tweet stored")


async def test_explain_highlights_the_words_that_push_each_way(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/explain", json={"text": "Lost bag but great crew"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "linear"  # the fixture model is a logistic regression
    assert body["complete"] is True
    assert [w["word"] for w in body["words"]] == ["Lost", "bag", "but", "great", "crew"]
    ranked = body["top_positive"] + body["top_negative"]
    assert ranked and all(w["word"] in {"Lost", "bag", "but", "great", "crew"} for w in ranked)


async def test_explain_rejects_an_empty_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/explain", json={"text": " "})
    assert response.status_code == 422
    assert "empty" in response.json()["reason"]


async def test_explain_without_a_model_says_so(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    platform.holder.current = None
    response = await client.post("/v1/explain", json={"text": "hello"})
    assert response.status_code == 503
    assert response.json()["error"] == "model_not_ready"


async def test_a_french_tweet_is_answered_unreliable_with_its_language_and_stored_so(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    texts = [
        "Vol annulé encore une fois, service client injoignable",
        "Lovely crew on the flight to Lisbon, thank you so much",
        "merci !",
    ]
    answered = await client.post("/v1/predict", json={"texts": texts})
    assert answered.status_code == 200, answered.text
    french, english, short = answered.json()["predictions"]

    assert french["language"]["code"] == "fr" and french["language"]["status"] == "detected"
    assert french["reliable"] is False
    assert "French" in french["reliability_note"] and "English" in french["reliability_note"]
    assert english["language"]["code"] == "en" and english["reliable"] is True
    assert english["reliability_note"] is None
    # Too short to tell: said, not guessed, and not flagged.
    assert short["language"] == {"code": None, "confidence": 0.0, "status": "too_short"}
    assert short["reliable"] is True and "Too short" in short["reliability_note"]

    await eventually(rows_in(platform, "predictions", 3), what="the stored predictions")
    assert platform.store is not None
    rows = platform.store.query(
        "SELECT id, language, language_status, reliable, reliability_note FROM predictions FINAL"
    )
    stored = {row["id"]: row for row in rows}
    assert stored[french["id"]]["language"] == "fr" and stored[french["id"]]["reliable"] == 0
    assert stored[english["id"]]["language"] == "en" and stored[english["id"]]["reliable"] == 1
    assert stored[short["id"]]["language_status"] == "too_short"
    # Read back from the store, the answer is the same.
    again = (await client.get(f"/v1/predictions/{french['id']}")).json()
    assert {k: again[k] for k in ("language", "reliable", "reliability_note")} == {
        k: french[k] for k in ("language", "reliable", "reliability_note")
    }
