"""The Kafka side of ingest: raw events and labels in; canonical records or dead letters out."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from tideline import catalog, dlq, service, streams
from tideline.errors import DecodeError
from tideline.settings import Settings

from services.ingest import metrics
from services.ingest.handler import EVENT_ID_HEADER, LABEL_DIGEST_HEADER, Ingest, label_digest
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

RAW_EVENTS, RAW_LABELS = catalog.topic("events.raw"), catalog.topic("labels.raw")
EVENTS, LABELS = catalog.topic("events"), catalog.topic("labels")


class Batches:
    """Each raw record validated into its canonical topic, or refused with the reason."""

    def __init__(self, ingest: Ingest, settings: Settings, ready: asyncio.Event) -> None:
        self.ingest, self.ready = ingest, ready
        self.raw_events = RAW_EVENTS.full_name(settings)
        self.consumed = (self.raw_events, RAW_LABELS.full_name(settings))
        self.written = {t.name: t.full_name(settings) for t in (EVENTS, LABELS)}

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        await self.ready.wait()  # records of a new assignment may come while it re-learns
        # Counted per batch: a labelled counter's increment costs a lock each time.
        records_in = dict.fromkeys(self.consumed, 0)
        records_out = dict.fromkeys(self.written, 0)
        duplicates = dict.fromkeys(self.consumed, 0)
        corrections = 0
        outcome = streams.Outcome()
        for message in messages:
            records_in[message.topic] += 1
            started = time.perf_counter()
            try:
                read = self.ingest.event if message.topic == self.raw_events else self.ingest.label
                result = read(message.value)
            except dlq.RejectionError as rejection:
                outcome.rejected.append((dlq.Source.of(message), rejection))
                continue
            except Exception as exc:  # a bug must cost one record, not the service
                log.exception(
                    "unexpected error at %s/%d/%d", message.topic, message.partition, message.offset
                )
                bug = dlq.RejectionError("internal", type(exc).__name__, str(exc))
                outcome.rejected.append((dlq.Source.of(message), bug))
                continue
            finally:
                metrics.LATENCY.observe(time.perf_counter() - started)
            if result is None:
                duplicates[message.topic] += 1
                continue
            records_out[result.topic] += 1
            corrections += result.correction
            outcome.produce.append(
                streams.Produce(
                    self.written[result.topic],
                    result.key,
                    result.value,
                    result.timestamp_ms,
                    result.headers,
                )
            )
        for topic, count in records_in.items():
            metrics.RECORDS_IN.labels(topic).inc(count)
            metrics.DUPLICATES.labels(topic).inc(duplicates[topic])
        for topic, count in records_out.items():
            metrics.RECORDS_OUT.labels(topic).inc(count)
        metrics.LABEL_CORRECTIONS.inc(corrections)
        return outcome


class Relearn(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's base is untyped
    """Dedup follows the partitions: a worker that gets partitions re-learns the ids of
    the last records written to every output partition (by offset, whatever their event
    times), after the worker that gave them up flushed what it had sent."""

    def __init__(self, ingest: Ingest, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.ingest, self.settings, self.producer = ingest, settings, producer
        self.ready = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.ready.clear()
        await self.producer.flush()  # every output so far acknowledged: the next owner sees it

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        started = time.perf_counter()
        count = await relearn(self.ingest, self.settings)
        self.ready.set()
        log.info("re-learned %d ids in %.2fs", count, time.perf_counter() - started)


async def relearn(ingest: Ingest, settings: Settings) -> int:
    """Mark as seen the ids of the last records of each partition of `events` and `labels`."""
    count = 0
    for handle in (EVENTS, LABELS):
        topic = handle.bind(settings, ingest.project.derived_schemas)
        ranges = await streams.offset_ranges(settings, topic.name)
        tail = [
            streams.OffsetRange(
                r.topic, r.partition, max(r.start, r.end - ingest.dedup_records), r.end
            )
            for r in ranges
        ]
        async for message in streams.read_ranges(settings, tail):
            event_id = _event_id(handle, topic, message)
            if event_id is not None:
                digest = _label_digest(topic, message) if handle is LABELS else None
                ingest.remember(handle.name, event_id, digest)
                count += 1
    return count


def _label_digest(topic: catalog.Bound, message: streams.Message) -> str | None:
    """A label's header (its value's, if written before labels had one)."""
    found = dict(message.headers).get(LABEL_DIGEST_HEADER)
    if found is not None:
        return str(found.decode(errors="replace"))
    try:
        return label_digest(topic.decode(message.value)["payload"])
    except DecodeError:
        return None


def _event_id(handle: catalog.Topic, topic: catalog.Bound, message: streams.Message) -> str | None:
    """A label's key; an event's header (its value, if written before events had one)."""
    if handle is LABELS:
        return None if message.key is None else message.key.decode(errors="replace")
    found = dict(message.headers).get(EVENT_ID_HEADER)
    if found is not None:
        return str(found.decode(errors="replace"))
    try:
        return str(topic.decode(message.value)["event_id"])
    except DecodeError:
        return None


@asynccontextmanager
async def job(context: service.Context[IngestSettings]) -> AsyncIterator[service.Job]:
    ingest = Ingest(
        context.project, context.own.dedup_records, max_record_bytes=context.own.max_record_bytes
    )
    listener = Relearn(ingest, context.settings, context.producer)
    yield service.Job(Batches(ingest, context.settings, listener.ready).handle, listener=listener)
