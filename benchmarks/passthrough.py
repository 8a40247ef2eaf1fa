"""The peer every pipeline benchmark stands next to: a raw aiokafka consume→produce loop."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from tideline import catalog, dlq, kafka, service, streams
from tideline.settings import Settings

Handler = Callable[[streams.Messages], Awaitable[streams.Outcome]]


async def timed(
    settings: Settings, source: str, n: int, handle: Handler, service_name: str | None = None
) -> float:
    """Seconds to consume n records of `source`, handle, produce and commit them; with
    `service_name`, doing after each poll what that service does (its metrics)."""
    consumer = kafka.consumer(
        settings, catalog.topic(source).full_name(settings), group_id=uuid.uuid4().hex
    )
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()
    done = asyncio.Event()
    count = 0

    async def counting(messages: streams.Messages) -> streams.Outcome:
        nonlocal count
        count += len(messages)
        if count >= n:
            done.set()
        return await handle(messages)

    def refuse(source: dlq.Source, rejection: dlq.RejectionError) -> streams.Produce:
        raise AssertionError(f"{source.offset} refused: {rejection}")

    start = time.perf_counter()
    job = streams.Job(counting)
    if service_name is None:
        await streams.run(consumer, producer, job, refuse, done)
    else:
        await streams.run(
            consumer, producer, job, refuse, done, service.Polled(service_name, consumer)
        )
    elapsed = time.perf_counter() - start
    await consumer.stop()
    await producer.stop()
    return elapsed


def passthrough(sink: str) -> Handler:
    """Each record unchanged to `sink` (a full topic name)."""

    async def handle(messages: streams.Messages) -> streams.Outcome:
        return streams.Outcome(
            [streams.Produce(sink, m.key, m.value, m.timestamp) for m in messages]
        )

    return handle
