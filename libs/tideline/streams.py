"""The thin Kafka loop around a service's pure handler: consume, handle, produce, commit.

At-least-once: offsets are committed only after every output of the batch is
acknowledged; handlers make the repeats harmless (dedup, event-time guards).
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from tideline import kafka
from tideline.settings import Settings


@dataclass(frozen=True)
class Produce:
    topic: str  # full topic name
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


Handler = Callable[[ConsumerRecord[bytes, bytes]], Iterable[Produce]]


async def run(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handle: Handler,
    stop: asyncio.Event,
    on_poll: Callable[[], None] = lambda: None,
) -> None:
    """Until `stop` is set: poll a batch, hand each record to `handle`, send, wait, commit."""
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=200, max_records=2000)
        on_poll()
        pending = []
        for messages in batches.values():
            for message in messages:
                for out in handle(message):
                    pending.append(
                        await producer.send(
                            out.topic,
                            out.value,
                            key=out.key,
                            timestamp_ms=out.timestamp_ms,
                            headers=list(out.headers),
                        )
                    )
        if pending:
            await asyncio.gather(*pending)
        if batches:
            await consumer.commit()


async def read_back(
    settings: Settings, topic: str, since_ms: int
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` with a timestamp from `since_ms` up to the end as of now."""
    partitions = [TopicPartition(topic, p) for p in await kafka.partitions(settings, topic)]
    consumer = kafka.consumer(settings, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        remaining = {}
        for tp in partitions:
            found = starts.get(tp)
            start = found.offset if found is not None else ends[tp]
            if start < ends[tp]:
                consumer.seek(tp, start)
                remaining[tp] = ends[tp]
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset < remaining.get(tp, -1):
                        yield message
                if messages and messages[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()
