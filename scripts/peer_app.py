"""The peer of the pipeline in scripts/bench_pipeline.py: what a user would write instead, a
minimal FastAPI app that scores each request with the champion in its own process.

    python scripts/peer_app.py --port 8100   (AIRPARADIS_MLFLOW_TRACKING_URI names the registry)
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from shared.registry import Registry
from shared.settings import Settings


class Tweet(BaseModel):
    text: str


class Answer(BaseModel):
    label: str
    probability: float
    threshold: float
    model_version: str


def create_app() -> FastAPI:
    settings = Settings()
    model = Registry.of(settings).load()
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(tweet: Tweet) -> Answer:
        # A sync route: FastAPI runs it in its thread pool, as most such apps do.
        probability = float(model.predict_proba([tweet.text])[0])
        label = "positive" if probability >= model.threshold else "negative"
        return Answer(
            label=label,
            probability=probability,
            threshold=model.threshold,
            model_version=model.version,
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")
