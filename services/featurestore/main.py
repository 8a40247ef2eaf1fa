"""`tideline run featurestore`: events in; feature vectors, window state and Redis out."""

import asyncio
import logging

from pydantic_settings import BaseSettings, SettingsConfigDict
from tideline import kafka, project, service, streams
from tideline.online_store import OnlineWriter
from tideline.settings import Settings

from services.featurestore.handler import FeatureStore
from services.featurestore.state import WindowStates
from services.featurestore.stream import Restore, batch_handler

log = logging.getLogger(__name__)


class FeatureStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_FEATURESTORE_", extra="forbid")

    metrics_port: int = 9102
    group_id: str | None = None  # default: "<topic prefix>featurestore"


async def serve() -> None:
    settings, own = Settings(), FeatureStoreSettings()
    stop = service.setup("featurestore", own.metrics_port, settings.native_threads)
    definition = project.load(settings.project)
    await kafka.require(settings, "events", "features", "featurestore.state", "ingest.dlq")
    states = WindowStates(settings)
    await states.check_partitions()
    writer = OnlineWriter(settings, definition)
    consumer = kafka.consumer(settings, group_id=own.group_id or settings.topic("featurestore"))
    consumer.subscribe([settings.topic("events")], listener=Restore(states))
    producer = kafka.producer(settings)
    log.info("feature set %s, consuming %s", definition.features.version, settings.topic("events"))
    try:
        async with kafka.started(consumer, producer):
            await streams.run(
                consumer,
                producer,
                batch_handler(settings, FeatureStore(definition), states, writer),
                stop,
                lambda: service.heartbeat("featurestore"),
            )
    finally:
        await writer.close()


def main() -> None:
    asyncio.run(serve())
