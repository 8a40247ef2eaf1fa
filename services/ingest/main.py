"""`tideline run ingest`: raw events and labels in; canonical records or dead letters out."""

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tideline import dlq, kafka, project, serde, service, streams
from tideline.durations import Duration
from tideline.settings import Settings

from services.ingest import metrics
from services.ingest.handler import Ingest

log = logging.getLogger(__name__)


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_INGEST_", extra="forbid")

    dedup_window: Duration = Field(default=timedelta(hours=1))
    metrics_port: int = 9101
    group_id: str = "tideline-ingest"


def handler(ingest: Ingest, settings: Settings) -> streams.Handler:
    raw_events = settings.topic("events.raw")  # the other consumed topic is labels.raw
    # Looking a labelled child up costs more than counting with it: do it once per topic.
    records_in = {
        t: metrics.RECORDS_IN.labels(t) for t in (raw_events, settings.topic("labels.raw"))
    }
    records_out = {t: metrics.RECORDS_OUT.labels(t) for t in ("events", "labels")}

    def handle(message: ConsumerRecord[bytes, bytes]) -> Iterator[streams.Produce]:
        records_in[message.topic].inc()
        started = time.perf_counter()
        try:
            out = (ingest.event if message.topic == raw_events else ingest.label)(message.value)
        except dlq.RejectionError as rejection:
            yield _dead_letter(settings, message, rejection)
            return
        except Exception as exc:  # a bug must cost one record, not the service
            log.exception(
                "unexpected error at %s/%d/%d", message.topic, message.partition, message.offset
            )
            yield _dead_letter(
                settings, message, dlq.RejectionError("internal", type(exc).__name__, str(exc))
            )
            return
        finally:
            metrics.LATENCY.observe(time.perf_counter() - started)
        if out is None:
            metrics.DUPLICATES.labels(message.topic).inc()
            return
        records_out[out.topic].inc()
        yield streams.Produce(settings.topic(out.topic), out.key, out.value, out.timestamp_ms)

    return handle


def _dead_letter(
    settings: Settings, message: ConsumerRecord[bytes, bytes], rejection: dlq.RejectionError
) -> streams.Produce:
    metrics.REJECTED.labels(
        message.topic, rejection.stage, rejection.rule or rejection.error_class
    ).inc()
    source = dlq.Source(
        message.topic,
        message.partition,
        message.offset,
        message.timestamp,
        message.key,
        message.value,
        tuple(message.headers),
    )
    key, value, headers = dlq.dead_letter(source, rejection, "ingest")
    return streams.Produce(settings.topic("ingest.dlq"), key, value, None, tuple(headers))


async def rebuild_dedup(ingest: Ingest, settings: Settings) -> int:
    """Re-learn the ids already written, so a restart does not let repeats through."""
    since = int((datetime.now(UTC) - ingest.event_ids.window).timestamp() * 1000)
    decoder = serde.Decoder([ingest.project.event_schema, ingest.project.label_schema])
    count = 0
    for topic in ("events", "labels"):
        async for message in streams.read_back(settings, settings.topic(topic), since):
            ingest.remember(topic, decoder.decode(message.value)[1])
            count += 1
    return count


async def serve() -> None:
    settings, own = Settings(), IngestSettings()
    stop = service.setup("ingest", own.metrics_port)
    ingest = Ingest(project.load(settings.project), own.dedup_window)
    log.info("re-learned %d ids from the output topics", await rebuild_dedup(ingest, settings))
    consumer = kafka.consumer(
        settings, settings.topic("events.raw"), settings.topic("labels.raw"), group_id=own.group_id
    )
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()
    log.info("consuming %s", sorted(consumer.subscription()))
    try:
        await streams.run(
            consumer,
            producer,
            streams.per_record(handler(ingest, settings)),
            stop,
            lambda: service.heartbeat("ingest"),
        )
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    asyncio.run(serve())
