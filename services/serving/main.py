"""`tideline run serving`: feature vectors in, predictions out; request-time scoring over HTTP."""

import asyncio
import contextlib
import logging
import time

from aiokafka import ConsumerRecord
from tideline import dlq, kafka, project, service, streams
from tideline.models import ModelClient
from tideline.scoring import RequestScorer
from tideline.settings import Settings

from services.serving import api, metrics
from services.serving.deployment import Deployment
from services.serving.handler import Predictor
from services.serving.settings import ServingSettings

log = logging.getLogger(__name__)


def batch_handler(
    settings: Settings, predictor: Predictor, deployment: Deployment
) -> streams.BatchHandler:
    predictions, dead_letters = settings.topic("predictions"), settings.topic("ingest.dlq")

    async def handle(messages: list[ConsumerRecord[bytes, bytes]]) -> list[streams.Produce]:
        started = time.perf_counter()
        champion, challenger = deployment.champion, deployment.challenger
        assert champion is not None  # the stream starts once one is loaded
        now_ms = time.time_ns() // 1_000_000
        batch = predictor.process(map(dlq.Source.of, messages), champion, challenger, now_ms)
        out = [
            streams.Produce(predictions, p.entity.encode(), p.record, p.event_time)
            for p in batch.predictions
        ]
        for source, rejection in batch.rejected:
            key, value, headers = dlq.dead_letter(source, rejection, "serving")
            out.append(streams.Produce(dead_letters, key, value, None, tuple(headers)))
            metrics.REJECTED.labels(rejection.stage).inc()
        for prediction in batch.predictions:
            if not prediction.shadow:
                metrics.LATENCY.observe(prediction.latency_ms / 1000)
        scored = sum(not p.shadow for p in batch.predictions)
        metrics.SCORED.labels("champion").inc(scored)
        metrics.SCORED.labels("challenger").inc(len(batch.predictions) - scored)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return out

    return handle


async def serve() -> None:
    settings, own = Settings(), ServingSettings()
    stop = service.setup("serving", own.metrics_port, settings.native_threads)
    definition = project.load(settings.project)
    await kafka.require(settings, "features", "predictions", "models.updated", "ingest.dlq")
    name = own.model_name or definition.name
    deployment = Deployment(ModelClient(settings), definition, name, own.shadow)
    following = asyncio.create_task(deployment.follow())
    following.add_done_callback(lambda _: stop.set())  # a model feed that fails stops us
    scorer = RequestScorer(settings, definition)
    http = api.server(api.app(deployment, scorer), own.http_host, own.http_port)
    serving_http = asyncio.create_task(http.serve()) if own.http_port else None
    try:
        log.info("waiting for a champion of %s", name)
        await _beat_until(deployment.ready, stop)
        if own.stream and not stop.is_set():
            await _stream(settings, own, Predictor(definition), deployment, stop)
        await _beat_until(stop, stop)  # request-time scoring only
        if following.done():
            await following  # raises what ended it
    finally:
        http.should_exit = True
        if serving_http is not None:
            await serving_http
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        scorer.close()


async def _beat_until(event: asyncio.Event, stop: asyncio.Event) -> None:
    """The liveness heartbeat every second until `event` (or a stop): no stream polls."""
    while not (event.is_set() or stop.is_set()):
        service.heartbeat("serving")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 1)


async def _stream(
    settings: Settings,
    own: ServingSettings,
    predictor: Predictor,
    deployment: Deployment,
    stop: asyncio.Event,
) -> None:
    group = own.group_id or settings.topic("serving")
    consumer = kafka.consumer(settings, settings.topic("features"), group_id=group)
    producer = kafka.producer(settings)
    async with kafka.started(consumer, producer):
        await streams.run(
            consumer,
            producer,
            batch_handler(settings, predictor, deployment),
            stop,
            lambda: service.heartbeat("serving"),
        )


def main() -> None:
    asyncio.run(serve())
