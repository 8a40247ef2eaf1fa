"""`tideline run ingest`: raw events and labels in; canonical records or dead letters out."""

import asyncio
import logging
import time
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


def handler(ingest: Ingest, settings: Settings) -> streams.BatchHandler:
    raw_events = settings.topic("events.raw")  # the other consumed topic is labels.raw
    consumed = (raw_events, settings.topic("labels.raw"))
    written = {t: settings.topic(t) for t in ("events", "labels")}

    async def handle(messages: list[ConsumerRecord[bytes, bytes]]) -> list[streams.Produce]:
        # Counted per batch: a labelled counter's increment costs a lock each time.
        records_in = dict.fromkeys(consumed, 0)
        records_out = dict.fromkeys(written, 0)
        duplicates = dict.fromkeys(consumed, 0)
        out: list[streams.Produce] = []
        for message in messages:
            records_in[message.topic] += 1
            started = time.perf_counter()
            try:
                result = (ingest.event if message.topic == raw_events else ingest.label)(
                    message.value
                )
            except dlq.RejectionError as rejection:
                out.append(_dead_letter(settings, message, rejection))
                continue
            except Exception as exc:  # a bug must cost one record, not the service
                log.exception(
                    "unexpected error at %s/%d/%d", message.topic, message.partition, message.offset
                )
                bug = dlq.RejectionError("internal", type(exc).__name__, str(exc))
                out.append(_dead_letter(settings, message, bug))
                continue
            finally:
                metrics.LATENCY.observe(time.perf_counter() - started)
            if result is None:
                duplicates[message.topic] += 1
                continue
            records_out[result.topic] += 1
            out.append(
                streams.Produce(
                    written[result.topic], result.key, result.value, result.timestamp_ms
                )
            )
        for topic, count in records_in.items():
            metrics.RECORDS_IN.labels(topic).inc(count)
            metrics.DUPLICATES.labels(topic).inc(duplicates[topic])
        for topic, count in records_out.items():
            metrics.RECORDS_OUT.labels(topic).inc(count)
        return out

    return handle


def _dead_letter(
    settings: Settings, message: ConsumerRecord[bytes, bytes], rejection: dlq.RejectionError
) -> streams.Produce:
    metrics.REJECTED.labels(
        message.topic, rejection.stage, rejection.rule or rejection.error_class
    ).inc()
    key, value, headers = dlq.dead_letter(dlq.Source.of(message), rejection, "ingest")
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
    stop = service.setup("ingest", own.metrics_port, settings.native_threads)
    await kafka.require(settings, "events.raw", "labels.raw", "events", "labels", "ingest.dlq")
    ingest = Ingest(project.load(settings.project), own.dedup_window)
    log.info("re-learned %d ids from the output topics", await rebuild_dedup(ingest, settings))
    consumer = kafka.consumer(
        settings, settings.topic("events.raw"), settings.topic("labels.raw"), group_id=own.group_id
    )
    producer = kafka.producer(settings)
    async with kafka.started(consumer, producer):
        log.info("consuming %s", sorted(consumer.subscription()))
        await streams.run(
            consumer,
            producer,
            handler(ingest, settings),
            stop,
            lambda: service.heartbeat("ingest"),
        )


def main() -> None:
    asyncio.run(serve())
