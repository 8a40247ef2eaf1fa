"""The Kafka side of ingest: raw events and labels in; canonical records or dead letters out."""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from tideline import catalog, dlq, service, streams
from tideline.settings import Settings

from services.ingest import metrics
from services.ingest.handler import Ingest
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

RAW_EVENTS, RAW_LABELS = catalog.topic("events.raw"), catalog.topic("labels.raw")
EVENTS, LABELS = catalog.topic("events"), catalog.topic("labels")


class Batches:
    """Each raw record validated into its canonical topic, or refused with the reason."""

    def __init__(self, ingest: Ingest, settings: Settings) -> None:
        self.ingest = ingest
        self.raw_events = RAW_EVENTS.full_name(settings)
        self.consumed = (self.raw_events, RAW_LABELS.full_name(settings))
        self.written = {t.name: t.full_name(settings) for t in (EVENTS, LABELS)}

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        # Counted per batch: a labelled counter's increment costs a lock each time.
        records_in = dict.fromkeys(self.consumed, 0)
        records_out = dict.fromkeys(self.written, 0)
        duplicates = dict.fromkeys(self.consumed, 0)
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
            outcome.produce.append(
                streams.Produce(
                    self.written[result.topic], result.key, result.value, result.timestamp_ms
                )
            )
        for topic, count in records_in.items():
            metrics.RECORDS_IN.labels(topic).inc(count)
            metrics.DUPLICATES.labels(topic).inc(duplicates[topic])
        for topic, count in records_out.items():
            metrics.RECORDS_OUT.labels(topic).inc(count)
        return outcome


async def rebuild_dedup(ingest: Ingest, settings: Settings) -> int:
    """Re-learn the ids already written, so a restart does not let repeats through."""
    since = int((datetime.now(UTC) - ingest.event_ids.window).timestamp() * 1000)
    count = 0
    for handle in (EVENTS, LABELS):
        topic = handle.bind(settings, ingest.project.derived_schemas)
        async for message in streams.read_back(settings, topic.name, since):
            ingest.remember(handle.name, topic.decode(message.value))
            count += 1
    return count


@asynccontextmanager
async def job(context: service.Context[IngestSettings]) -> AsyncIterator[service.Job]:
    ingest = Ingest(
        context.project, context.own.dedup_window, max_record_bytes=context.own.max_record_bytes
    )
    log.info(
        "re-learned %d ids from the output topics", await rebuild_dedup(ingest, context.settings)
    )
    yield service.Job(Batches(ingest, context.settings).handle)
