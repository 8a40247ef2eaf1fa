"""The Kafka side of the feature store: batches of events in; vectors, state, dead letters out.

On aiokafka rather than faust: faust's per-event machinery cost ~190 µs an event
here, a feature store on it topped out near 4,000 events/s and missed the freshness
target at 2,000/s (docs/featurestore.md has the figures). State is ours, restored
from its compacted changelog when partitions are assigned (state.py).

Per batch, in this order: compute; write Redis (retrying until it takes the write);
hand vectors, changelog records and refused events to `streams.run`, which commits
the batch's offsets once all are acknowledged. At-least-once; a replay is harmless.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from aiokafka import ConsumerRebalanceListener, TopicPartition
from tideline import catalog, dlq, service, streams
from tideline.online_store import Entry, OnlineWriter

from services.featurestore import metrics
from services.featurestore.handler import FeatureStore
from services.featurestore.settings import FeatureStoreSettings
from services.featurestore.state import WindowStates

EVENTS, FEATURES = catalog.topic("events"), catalog.topic("features")

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


class Batches:
    def __init__(
        self,
        store: FeatureStore,
        states: WindowStates,
        writer: OnlineWriter,
    ) -> None:
        self.store, self.states, self.writer = store, states, writer

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        await self.states.ready.wait()
        started = time.perf_counter()
        batch = self.store.process(map(dlq.Source.of, messages), self.states.data)
        out = self.states.changelog(batch.changed)
        features = self.store.features.name
        out += [
            streams.Produce(features, v.entry.entity.encode(), v.record, v.entry.t)
            for v in batch.vectors
        ]
        metrics.ONLINE_WRITES.inc(await _materialize(self.writer, batch.latest()))
        metrics.EVENTS.inc(len(messages))
        metrics.VECTORS.inc(len(batch.vectors))
        metrics.REPLAYS.inc(batch.replays)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return streams.Outcome(out, batch.rejected)


@asynccontextmanager
async def job(context: service.Context[FeatureStoreSettings]) -> AsyncIterator[service.Job]:
    events, features = context.topic(EVENTS), context.topic(FEATURES)
    states = WindowStates(context.settings, events)
    await states.check_partitions()
    writer = OnlineWriter(context.settings, context.project)
    log.info("feature set %s", context.project.features.version)
    store = FeatureStore(context.project, events, features)
    try:
        yield service.Job(Batches(store, states, writer).handle, listener=Restore(states))
    finally:
        await writer.close()


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
