"""The faust app around the pure handler: events in; vectors, dead letters and Redis out.

Window state is a faust table, backed by a compacted changelog topic, so a restarted
worker recovers it. Events are taken in batches (`take_events`): per-event agents
cost too much here (see docs/featurestore.md). faust refuses table writes outside
per-event iteration, so the batch writes the table's store and sends each changed
entity's state to the changelog itself, once per batch, with the partition it came
from. faust flushes the producer before it commits offsets, and acknowledges a
batch's events only when the next batch is asked for, after the Redis write here
returned: at-least-once, and the state's offsets make the repeats harmless.
"""

import asyncio
import logging
import time
from typing import Any, cast

import faust
import redis
from faust.serializers import codecs
from tideline import catalog, dlq, service
from tideline.online_store import OnlineWriter
from tideline.settings import Settings
from tideline.windows import EntityState

from services.featurestore import metrics
from services.featurestore.handler import FeatureStore

log = logging.getLogger(__name__)


class _Utf8(codecs.Codec):
    def _dumps(self, s: Any) -> bytes:
        return str(s).encode()

    def _loads(self, s: bytes) -> Any:
        return s.decode()


class _State(codecs.Codec):
    def _dumps(self, s: Any) -> bytes:
        return bytes(s.to_bytes())

    def _loads(self, s: bytes) -> Any:
        return EntityState.from_bytes(s)


_KEY_CODEC, _STATE_CODEC = "tideline-utf8", "tideline-window-state"
codecs.register(_KEY_CODEC, _Utf8())
codecs.register(_STATE_CODEC, _State())


def app(
    settings: Settings,
    store: FeatureStore,
    writer: OnlineWriter,
    batch_size: int,
    batch_within_s: float,
) -> faust.App:
    partitions = catalog.topic("events").partitions
    largest = catalog.max_message_bytes()
    app = faust.App(
        settings.topic("featurestore"),  # faust's group id and its changelog topics' prefix
        broker=";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(",")),
        store="memory://",
        datadir=str(settings.home / f"{settings.topic('featurestore')}-data"),
        web_enabled=False,
        topic_partitions=partitions,
        producer_acks=-1,
        producer_max_request_size=largest,
        consumer_max_fetch_size=largest,
        consumer_auto_offset_reset="earliest",
    )
    events = app.topic(
        settings.topic("events"),
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    table = app.Table(
        "windows",
        partitions=partitions,
        help="Each entity's window state.",
        changelog_topic=app.topic(
            f"{app.conf.id}-windows-changelog",
            partitions=partitions,
            compacting=True,
            internal=True,
            acks=False,
            allow_empty=True,
            key_serializer=_KEY_CODEC,
            value_serializer=_STATE_CODEC,
        ),
    )
    features, dead_letters = settings.topic("features"), settings.topic("ingest.dlq")
    changelog = table.changelog_topic.get_topic_name()

    @app.agent(events)
    async def compute(stream: faust.StreamT[Any]) -> None:
        # take_events is on faust's Stream, not on its StreamT interface
        batches = cast(faust.Stream[Any], stream).take_events(batch_size, within=batch_within_s)
        async for batch_events in batches:
            service.heartbeat("featurestore")
            started = time.perf_counter()
            sources = [_source(e.message) for e in batch_events]
            batch = store.process(sources, table.data)
            # Straight to the producer: faust's send_soon costs ~0.1 ms a record here.
            for entity, (partition, state) in batch.changed.items():
                await app.producer.send(
                    changelog, entity.encode(), state.to_bytes(), partition, None, None
                )
            for vector in batch.vectors:
                entry = vector.entry
                await app.producer.send(
                    features, entry.entity.encode(), vector.record, None, entry.t / 1000, None
                )
            for source, rejection in batch.rejected:
                key, value, headers = dlq.dead_letter(source, rejection, "featurestore")
                await app.producer.send(dead_letters, key, value, None, None, headers)
                metrics.REJECTED.labels(rejection.stage, rejection.error_class).inc()
            metrics.ONLINE_WRITES.inc(await _materialize(writer, batch.latest()))
            metrics.EVENTS.inc(len(sources))
            metrics.VECTORS.inc(len(batch.vectors))
            metrics.REPLAYS.inc(batch.replays)
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    @app.timer(1.0)  # type: ignore[untyped-decorator]  # faust's timer decorator is untyped
    async def alive() -> None:
        # take_events yields nothing while idle; the loop being alive is the signal then
        service.heartbeat("featurestore")

    return app


async def _materialize(writer: OnlineWriter, entries: list[Any]) -> int:
    """Write until Redis takes it: the batch is not acknowledged before."""
    delay = 0.1
    while True:
        try:
            return await writer.write(entries)
        except (redis.RedisError, OSError) as exc:
            metrics.ONLINE_ERRORS.inc()
            log.warning("Redis write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _source(message: Any) -> dlq.Source:
    return dlq.Source(
        message.topic,
        message.partition,
        message.offset,
        int(message.timestamp * 1000) if message.timestamp else None,
        message.key,
        message.value,
        tuple(message.headers or ()),
    )
