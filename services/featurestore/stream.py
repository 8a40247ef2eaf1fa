"""The Kafka side of the feature store: batches of events in; vectors, state, dead letters out.

On aiokafka rather than faust: faust's per-event machinery cost ~190 µs an event
here, a feature store on it topped out near 4,000 events/s and missed the freshness
target at 2,000/s (docs/featurestore.md has the figures). State is ours, restored
from its compacted changelog when partitions are assigned (state.py).

Per batch, in this order: compute; write Redis (retrying until it takes the write);
hand vectors, changelog records and dead letters to `streams.run`, which commits
the batch's offsets once all are acknowledged. At-least-once; a replay is harmless.
"""

import asyncio
import logging
import time

import redis
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from tideline import dlq, streams
from tideline.online_store import Entry, OnlineWriter
from tideline.settings import Settings

from services.featurestore import metrics
from services.featurestore.handler import FeatureStore
from services.featurestore.state import WindowStates

log = logging.getLogger(__name__)


class Restore(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's base is untyped
    """Partitions follow their state: restored on assignment, dropped on revocation."""

    def __init__(self, states: WindowStates) -> None:
        self.states = states

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.states.drop(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        started = time.perf_counter()
        count = await self.states.restore(tp.partition for tp in assigned)
        log.info(
            "restored %d entities of partitions %s in %.2fs",
            count,
            sorted(tp.partition for tp in assigned),
            time.perf_counter() - started,
        )


def batch_handler(
    settings: Settings, store: FeatureStore, states: WindowStates, writer: OnlineWriter
) -> streams.BatchHandler:
    features, dead_letters = settings.topic("features"), settings.topic("ingest.dlq")

    async def handle(messages: list[ConsumerRecord[bytes, bytes]]) -> list[streams.Produce]:
        await states.ready.wait()
        started = time.perf_counter()
        batch = store.process(map(dlq.Source.of, messages), states.data)
        out = states.changelog(batch.changed)
        out += [
            streams.Produce(features, v.entry.entity.encode(), v.record, v.entry.t)
            for v in batch.vectors
        ]
        for source, rejection in batch.rejected:
            key, value, headers = dlq.dead_letter(source, rejection, "featurestore")
            out.append(streams.Produce(dead_letters, key, value, None, tuple(headers)))
            metrics.REJECTED.labels(rejection.stage, rejection.error_class).inc()
        metrics.ONLINE_WRITES.inc(await _materialize(writer, batch.latest()))
        metrics.EVENTS.inc(len(messages))
        metrics.VECTORS.inc(len(batch.vectors))
        metrics.REPLAYS.inc(batch.replays)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return out

    return handle


async def _materialize(writer: OnlineWriter, entries: list[Entry]) -> int:
    """Write until Redis takes it: the batch is not committed before."""
    delay = 0.1
    while True:
        try:
            return await writer.write(entries)
        except (redis.RedisError, OSError) as exc:
            metrics.ONLINE_ERRORS.inc()
            log.warning("Redis write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
