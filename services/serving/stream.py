"""The Kafka side of serving: the models followed, request-time scoring over HTTP, and
feature vectors scored into predictions, one model call per poll batch."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tideline import catalog, dlq, service, streams
from tideline.models import ModelClient
from tideline.scoring import RequestScorer

from services.serving import api, metrics
from services.serving.deployment import Deployment
from services.serving.handler import Predictor
from services.serving.settings import ServingSettings

log = logging.getLogger(__name__)

FEATURES, PREDICTIONS = catalog.topic("features"), catalog.topic("predictions")


class Batches:
    def __init__(self, predictor: Predictor, deployment: Deployment) -> None:
        self.predictor, self.deployment = predictor, deployment

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        started = time.perf_counter()
        champion, challenger = self.deployment.champion, self.deployment.challenger
        assert champion is not None  # the stream starts once one is loaded
        now_ms = time.time_ns() // 1_000_000
        batch = self.predictor.process(map(dlq.Source.of, messages), champion, challenger, now_ms)
        topic = self.predictor.predictions.name
        out = [
            streams.Produce(topic, p.entity.encode(), p.record, p.event_time)
            for p in batch.predictions
        ]
        for prediction in batch.predictions:
            if not prediction.shadow:
                metrics.LATENCY.observe(prediction.latency_ms / 1000)
        scored = sum(not p.shadow for p in batch.predictions)
        name = self.deployment.name
        metrics.SCORED.labels(name, str(champion.number), "champion").inc(scored)
        if challenger is not None and len(batch.predictions) > scored:
            metrics.SCORED.labels(name, str(challenger.number), "challenger").inc(
                len(batch.predictions) - scored
            )
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return streams.Outcome(out, batch.rejected)


@asynccontextmanager
async def job(context: service.Context[ServingSettings]) -> AsyncIterator[service.Job | None]:
    own, definition = context.own, context.project
    name = own.model_name or definition.name
    deployment = Deployment(ModelClient(context.settings), definition, name, own.shadow)
    context.background(deployment.follow())  # a model feed that fails stops us
    scorer = RequestScorer(context.settings, definition)
    http = api.server(
        api.app(deployment, scorer, own.token),
        own.http_host,
        own.http_port,
        own.tls_certfile,
        own.tls_keyfile,
    )
    serving_http = asyncio.create_task(http.serve()) if own.http_port else None
    try:
        log.info("waiting for a champion of %s", name)
        await context.wait(deployment.ready)  # nothing is consumed before: none is lost
        if not own.stream:
            yield None  # request-time scoring only
        else:
            predictor = Predictor(definition, context.topic(FEATURES), context.topic(PREDICTIONS))
            yield service.Job(Batches(predictor, deployment).handle)
    finally:
        http.should_exit = True
        if serving_http is not None:
            await serving_http
        scorer.close()
