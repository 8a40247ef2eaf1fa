"""The Kafka side of the feature store: batches of events in; vectors, state, dead letters out.

On aiokafka rather than faust: faust's per-event machinery cost ~190 µs an event
here, a feature store on it topped out near 4,000 events/s and missed the freshness
target at 2,000/s (docs/featurestore.md has the figures). State is ours, restored
from its compacted changelog when partitions are assigned (state.py).

Per batch, in this order: compute; write Redis (retrying until it takes the write,
rebuilding partitions whose writes Redis lost: online.py); hand vectors, changelog
records and refused events to `streams.run`, which commits the batch's offsets once
all are acknowledged. At-least-once; a replay is harmless.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

import redis
from aiokafka import ConsumerRebalanceListener, TopicPartition
from tideline import catalog, definitions, dlq, service, streams
from tideline.online_store import OnlineWriter

from services.featurestore import metrics
from services.featurestore.handler import FeatureStore
from services.featurestore.online import OFFSET_HEADER, Materializer
from services.featurestore.settings import FeatureStoreSettings
from services.featurestore.state import WindowStates

EVENTS, FEATURES = catalog.topic("events"), catalog.topic("features")

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class Restore(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's base is untyped
    """Partitions follow their state: restored on assignment (and Redis checked against
    it), dropped on revocation."""

    def __init__(self, states: WindowStates, online: Materializer) -> None:
        self.states, self.online = states, online

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.states.drop(tp.partition for tp in revoked)
        self.online.revoked(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        started = time.perf_counter()
        partitions = sorted(tp.partition for tp in assigned)
        count, stale = await self.states.restore(partitions)
        rebuilt = await self.states.rebuild(stale) if stale else []
        await _until_redis_takes(self.online.assigned, self.states.applied(partitions))
        if stale:  # each entity's vector of the definition running now, over the old one
            await _until_redis_takes(self.online.rewrite, rebuilt, stale)
        self.states.ready.set()
        log.info(
            "restored %d entities of partitions %s in %.2fs",
            count,
            partitions,
            time.perf_counter() - started,
        )


class Batches:
    def __init__(
        self,
        store: FeatureStore,
        states: WindowStates,
        online: Materializer,
    ) -> None:
        self.store, self.states, self.online = store, states, online

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        await self.states.ready.wait()
        started = time.perf_counter()
        batch = self.store.process(map(dlq.Source.of, messages), self.states.data)
        out = self.states.changelog(batch.changed)
        features = self.store.features.name
        out += [
            streams.Produce(
                features,
                v.entry.entity.encode(),
                v.record,
                v.entry.t,
                ((OFFSET_HEADER, b"%d" % v.entry.offset),),
                v.partition,
            )
            for v in batch.vectors
        ]
        handled: dict[int, int] = {}
        for message in messages:  # refused ones too: the mark is how far a partition is done
            handled[message.partition] = max(handled.get(message.partition, -1), message.offset)
        written = await _until_redis_takes(self.online.write, batch.latest(), handled)
        metrics.ONLINE_WRITES.inc(written)
        metrics.EVENTS.inc(len(messages))
        metrics.VECTORS.inc(len(batch.vectors))
        metrics.REPLAYS.inc(batch.replays)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return streams.Outcome(out, batch.rejected)

    async def tick(self) -> streams.Outcome:
        await _until_redis_takes(self.online.check)
        return streams.Outcome()


@asynccontextmanager
async def job(context: service.Context[FeatureStoreSettings]) -> AsyncIterator[service.Job]:
    events, features = context.topic(EVENTS), context.topic(FEATURES)
    store = FeatureStore(context.project, events, features)
    states = WindowStates(context.settings, store, context.producer)
    await states.check_partitions()
    writer = OnlineWriter(context.settings, context.project)
    online = Materializer(context.settings, writer, features, context.producer)
    key, value = definitions.entry(context.project)  # what its version means, for operators
    await context.producer.send_and_wait(context.topic(definitions.TOPIC).name, value, key=key)
    log.info("feature set %s", context.project.features.version)
    batches = Batches(store, states, online)
    try:
        yield service.Job(batches.handle, batches.tick, listener=Restore(states, online))
    finally:
        await writer.close()


async def _until_redis_takes(
    call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Retry until Redis answers: the batch is not committed before."""
    delay = 0.1
    while True:
        try:
            return await call(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            metrics.ONLINE_ERRORS.inc()
            log.warning("Redis write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
