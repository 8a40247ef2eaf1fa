"""The peer every pipeline benchmark stands next to: a raw aiokafka consume→produce loop."""

import asyncio
import time
import uuid

from aiokafka import ConsumerRecord
from tideline import kafka, streams
from tideline.settings import Settings


async def timed(settings: Settings, source: str, n: int, handle: streams.BatchHandler) -> float:
    """Seconds to consume n records of `source`, handle, produce and commit them."""
    consumer = kafka.consumer(settings, settings.topic(source), group_id=uuid.uuid4().hex)
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()
    done = asyncio.Event()
    count = 0

    async def counting(messages: list[ConsumerRecord[bytes, bytes]]) -> list[streams.Produce]:
        nonlocal count
        count += len(messages)
        if count >= n:
            done.set()
        return await handle(messages)

    start = time.perf_counter()
    await streams.run(consumer, producer, counting, done)
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return elapsed


def passthrough(sink: str) -> streams.BatchHandler:
    """Each record unchanged to `sink` (a full topic name)."""

    async def handle(messages: list[ConsumerRecord[bytes, bytes]]) -> list[streams.Produce]:
        return [streams.Produce(sink, m.key, m.value, m.timestamp) for m in messages]

    return handle
