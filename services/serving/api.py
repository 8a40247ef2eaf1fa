"""Request-time scoring over HTTP (FastAPI; the OpenAPI schema is at /openapi.json)."""

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime

import redis
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from tideline.scoring import RequestScorer, ScoringError

from services.serving import metrics
from services.serving.deployment import Deployment

FeatureValue = float | int | str | bool | None


class ScoreRequest(BaseModel):
    entity_id: str = Field(description="The entity to score, e.g. a card id.")
    features: dict[str, FeatureValue] = Field(
        default={},
        description="Feature values only the request knows; they replace the online ones.",
    )


class ScoreResponse(BaseModel):
    entity_id: str
    model_name: str
    model_version: int
    score: float = Field(description="Probability of the positive class, or the estimate.")
    predicted: str | None
    features: dict[str, FeatureValue] = Field(description="What the model saw.")
    features_as_of: datetime | None = Field(
        description="Event time of the entity's latest vector; null: it has none, defaults used."
    )
    feature_version: str
    latency_ms: float


class ModelsResponse(BaseModel):
    model_name: str
    champion: int | None
    challenger: int | None


def app(deployment: Deployment, scorer: RequestScorer) -> FastAPI:
    api = FastAPI(
        title="Tideline serving",
        description="Scores an entity from its online features with the champion model.",
    )

    # async handlers on purpose: the Redis read and one model call are shorter than a
    # hop to a worker thread, and the scorer's Redis client is not shared across threads
    @api.post("/score", responses={422: {}, 503: {}})
    async def score(request: ScoreRequest) -> ScoreResponse:
        started = time.perf_counter()
        champion = deployment.champion
        if champion is None:
            raise HTTPException(503, f"no champion of {deployment.name} is loaded yet")
        try:
            result = scorer.score(champion, request.entity_id, request.features)
        except ScoringError as exc:
            raise HTTPException(422, str(exc)) from exc
        except redis.RedisError as exc:
            raise HTTPException(503, f"online store unavailable: {exc}") from exc
        metrics.REQUESTS.observe(time.perf_counter() - started)
        return ScoreResponse(**asdict(result))

    @api.get("/models")
    async def models() -> ModelsResponse:
        return ModelsResponse(
            model_name=deployment.name,
            champion=None if deployment.champion is None else deployment.champion.number,
            challenger=None if deployment.challenger is None else deployment.challenger.number,
        )

    return api


class Server(uvicorn.Server):
    """uvicorn, minus its signal handlers: the service owns SIGTERM and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(api: FastAPI, host: str, port: int) -> Server:
    return Server(uvicorn.Config(api, host=host, port=port, log_config=None, access_log=False))
