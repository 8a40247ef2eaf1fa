"""The Kafka side of the registry: its state rebuilt from `models.updated`, then candidates
and commands handled by the registrar."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tideline import service, signing, streams
from tideline.models import ModelClient

from services.registry.registrar import Registrar
from services.registry.settings import RegistrySettings

log = logging.getLogger(__name__)


@asynccontextmanager
async def job(context: service.Context[RegistrySettings]) -> AsyncIterator[service.Job]:
    signer = signing.signer(context.settings)  # made at the first start, before any record
    registry = await ModelClient(context.settings).registry()  # the audit trail is the state
    log.info("state rebuilt: %d versions", len(registry.listing()))
    producer = context.producer

    async def send_chunks(chunks: list[streams.Produce]) -> None:
        sent = [await producer.send(c.topic, c.value, key=c.key) for c in chunks]
        await asyncio.gather(*sent)

    registrar = Registrar(
        context.settings, context.own, context.project, registry, signer, send_chunks
    )
    yield service.Job(registrar.handle)
