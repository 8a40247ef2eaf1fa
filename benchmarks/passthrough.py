"""The peer every pipeline benchmark stands next to: a raw aiokafka consume→produce loop."""

import asyncio
import time
import uuid
from collections.abc import Iterator

from aiokafka import ConsumerRecord
from tideline import kafka, streams
from tideline.settings import Settings


async def timed(settings: Settings, source: str, n: int, handle: streams.Handler) -> float:
    """Seconds to consume n records of `source`, handle, produce and commit them."""
    consumer = kafka.consumer(settings, settings.topic(source), group_id=uuid.uuid4().hex)
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()
    done = asyncio.Event()
    count = 0

    def counting(message: ConsumerRecord[bytes, bytes]) -> Iterator[streams.Produce]:
        nonlocal count
        count += 1
        if count >= n:
            done.set()
        return iter(list(handle(message)))

    start = time.perf_counter()
    await streams.run(consumer, producer, streams.per_record(counting), done)
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return elapsed


def passthrough(sink: str) -> streams.Handler:
    """Each record unchanged to `sink` (a full topic name)."""

    def handle(message: ConsumerRecord[bytes, bytes]) -> Iterator[streams.Produce]:
        yield streams.Produce(sink, message.key, message.value, message.timestamp)

    return handle
