"""Request-time scoring over HTTP (FastAPI; the OpenAPI schema is at /openapi.json)."""

import contextlib
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import redis
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr
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


def _authorized(token: SecretStr) -> Callable[..., None]:
    """A dependency that lets a request through only with `token` as its bearer token,
    compared in constant time."""
    bearer = HTTPBearer(auto_error=False)

    def check(given: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        expected = token.get_secret_value().encode()
        if given is None or not hmac.compare_digest(given.credentials.encode(), expected):
            metrics.UNAUTHORIZED.inc()
            raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})

    return check


def app(deployment: Deployment, scorer: RequestScorer, token: SecretStr | None = None) -> FastAPI:
    api = FastAPI(
        title="Tideline serving",
        description="Scores an entity from its online features with the champion model.",
    )
    # no dependency at all without a token: an open endpoint pays nothing for it
    guard = [] if token is None else [Depends(_authorized(token))]

    # async handlers on purpose: the Redis read and one model call are shorter than a
    # hop to a worker thread, and the scorer's Redis client is not shared across threads
    @api.post("/score", responses={401: {}, 422: {}, 503: {}}, dependencies=guard)
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


def server(
    api: FastAPI, host: str, port: int, certfile: Path | None = None, keyfile: Path | None = None
) -> Server:
    """uvicorn on `host:port`; HTTPS when given a certificate."""
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    return Server(config)
