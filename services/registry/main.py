"""`tideline run registry`: candidates and commands in; artifacts and model versions out."""

import asyncio
import logging

from tideline import kafka, project, service, streams
from tideline.models import ModelClient
from tideline.settings import Settings

from services.registry.registrar import Registrar
from services.registry.settings import RegistrySettings

log = logging.getLogger(__name__)


async def serve() -> None:
    settings, own = Settings(), RegistrySettings()
    stop = service.setup("registry", own.metrics_port, settings.native_threads)
    definition = project.load(settings.project)
    await kafka.require(
        settings,
        "models.candidates",
        "registry.commands",
        "models.updated",
        "models.artifacts",
        "features",
        "labels",
    )
    registry = await ModelClient(settings).registry()  # the audit trail is the state
    log.info("state rebuilt: %d versions", len(registry.listing()))
    consumer = kafka.consumer(
        settings,
        settings.topic("models.candidates"),
        settings.topic("registry.commands"),
        group_id=own.group_id or settings.topic("registry"),
    )
    producer = kafka.producer(settings)

    async def send_chunks(chunks: list[streams.Produce]) -> None:
        sent = [await producer.send(c.topic, c.value, key=c.key) for c in chunks]
        await asyncio.gather(*sent)

    async with kafka.started(consumer, producer):
        await streams.run(
            consumer,
            producer,
            Registrar(settings, own, definition, registry, send_chunks).handle,
            stop,
            lambda: service.heartbeat("registry"),
        )


def main() -> None:
    asyncio.run(serve())
