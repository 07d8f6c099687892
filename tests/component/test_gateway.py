"""The HTTP API over the in-memory pipeline: answers come back through the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.app import create_app
from shared.settings import Settings
from tests.component.conftest import Pipeline


@pytest.fixture
async def client(settings: Settings, pipeline: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings, pipeline.broker, pipeline.repository, pipeline.replies, pipeline.alerts
    )  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def test_predict_answers_through_the_pipeline(
    client: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    response = await client.post("/v1/predict", json={"text": "I love Air Paradis"})

    assert response.status_code == 200
    body = response.json()
    assert body["label"] == "positive"
    assert body["probability"] == 0.9
    assert body["threshold"] == 0.5
    assert body["model_name"] == "airparadis-sentiment"
    assert body["model_version"] == "1"
    assert body["id"] in pipeline.repository.predictions


async def test_predict_a_list_keeps_the_order(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/predict", json={"texts": ["great crew", "lost luggage", "amazing seats"]}
    )
    assert response.status_code == 200
    labels = [p["label"] for p in response.json()["predictions"]]
    assert labels == ["positive", "negative", "positive"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   "}, "empty"),
        ({"text": "a" * 1001}, "1000"),
        ({}, "exactly one"),
        ({"text": "a", "texts": ["b"]}, "exactly one"),
        ({"texts": []}, "texts"),
        ({"text": 42}, "text"),
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
    response = await client.post("/v1/predict", json={"text": "\x00\x01\x02"})
    assert response.status_code == 422
    assert response.json()["error"] == "unscorable"
    assert "empty" in response.json()["reason"]


async def test_feedback_on_a_served_prediction_is_published(
    client: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    prediction = (await client.post("/v1/predict", json={"text": "great"})).json()
    response = await client.post(
        "/v1/feedback",
        json={"prediction_id": prediction["id"], "correct_label": "negative", "comment": "sarcasm"},
    )
    assert response.status_code == 202
    [stored] = pipeline.repository.feedback.values()
    assert stored.prediction_id == prediction["id"]
    assert stored.prediction.label == "positive"
    assert stored.comment == "sarcasm"


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


async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_third_report_says_the_team_was_notified(client: httpx.AsyncClient) -> None:
    prediction = (await client.post("/v1/predict", json={"text": "great"})).json()
    answers = [
        (
            await client.post(
                "/v1/feedback?wait_alert_ms=1000", json={"prediction_id": prediction["id"]}
            )
        ).json()
        for _ in range(3)
    ]
    assert [a["team_notified"] for a in answers] == [False, False, True]
    assert answers[2]["alert_id"].startswith("wrong-")


async def test_explain_highlights_the_words_that_push_each_way(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/explain", json={"text": "Lost bag but great crew"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "occlusion"  # the fake model is not linear
    assert body["complete"] is True
    assert [w["word"] for w in body["words"]] == ["Lost", "bag", "but", "great", "crew"]
    assert [w["word"] for w in body["top_positive"]] == ["great"]
    great = body["words"][3]
    assert "Lost bag but great crew"[great["start"] : great["end"]] == "great"
    assert body["label"] == "positive"


async def test_explain_rejects_an_empty_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/explain", json={"text": " "})
    assert response.status_code == 422
    assert "empty" in response.json()["reason"]


async def test_explain_without_a_model_says_so(
    client: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    pipeline.holder.current = None
    response = await client.post("/v1/explain", json={"text": "hello"})
    assert response.status_code == 503
    assert response.json()["error"] == "model_not_ready"
