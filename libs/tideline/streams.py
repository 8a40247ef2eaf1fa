"""The thin Kafka loop around a service's pure handler: consume, handle, produce, commit.

At-least-once: a batch's offsets are committed only after every output of it is
acknowledged; handlers make the repeats harmless (dedup, event-time guards).
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from tideline import kafka
from tideline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Produce:
    topic: str  # full topic name
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: by key, as the producer's partitioner does


# A batch in (every partition's records of one poll); what to send for it out.
BatchHandler = Callable[[list[ConsumerRecord[bytes, bytes]]], Awaitable[list[Produce]]]


async def run(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    handle: BatchHandler,
    stop: asyncio.Event,
    on_poll: Callable[[], None] = lambda: None,
) -> None:
    """Until `stop` is set: poll a batch, hand it to `handle`, send its outputs, commit.

    A batch's offsets are committed once all its outputs are acknowledged, by a task
    of their own, in order: the next batch is polled and handled meanwhile, so a
    record does not wait for the round trips of the batch before it.
    """
    acknowledged: asyncio.Queue[tuple[list[asyncio.Future[Any]], dict[TopicPartition, int]] | None]
    acknowledged = asyncio.Queue(maxsize=8)  # batches in flight; more waits for the broker

    async def commit_in_order() -> None:
        while (batch := await acknowledged.get()) is not None:
            pending, offsets = batch
            await asyncio.gather(*pending)
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The partitions moved to another member while this batch was in flight:
                # it reads them from the last commit, so the batch is redone, not lost.
                log.warning("batch not committed, partitions reassigned: %s", exc)

    committer = asyncio.create_task(commit_in_order())
    try:
        while not stop.is_set() and not committer.done():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            on_poll()
            messages = [message for batch in batches.values() for message in batch]
            pending = [
                await producer.send(
                    out.topic,
                    out.value,
                    key=out.key,
                    partition=out.partition,
                    timestamp_ms=out.timestamp_ms,
                    headers=list(out.headers),
                )
                for out in (await handle(messages) if messages else [])
            ]
            offsets = {tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch}
            if offsets:
                await acknowledged.put((pending, offsets))
        if not committer.done():
            await acknowledged.put(None)  # commit what is in flight, then end
        await committer  # raises what failed a send or a commit
    finally:
        committer.cancel()


@dataclass(frozen=True)
class OffsetRange:
    """Records [start, end) of one partition: the unit a data set is named by."""

    topic: str
    partition: int
    start: int
    end: int


async def offset_ranges(
    settings: Settings, topic: str, since_ms: int | None = None, until_ms: int | None = None
) -> list[OffsetRange]:
    """Per partition, the offsets of records timestamped in [since_ms, until_ms), as of now.

    Without bounds: from the first record there is to the end.
    """
    partitions = [TopicPartition(topic, p) for p in await kafka.partitions(settings, topic)]
    consumer = kafka.consumer(settings, group_id=None)
    await consumer.start()
    try:
        firsts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)

        async def at(
            bound: int | None, default: dict[TopicPartition, int]
        ) -> dict[TopicPartition, int]:
            if bound is None:
                return default
            found = await consumer.offsets_for_times({tp: bound for tp in partitions})
            return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in partitions}

        starts, stops = await at(since_ms, firsts), await at(until_ms, ends)
    finally:
        await consumer.stop()
    return [
        OffsetRange(topic, tp.partition, starts[tp], max(starts[tp], stops[tp]))
        for tp in partitions
    ]


async def read_ranges(
    settings: Settings, ranges: list[OffsetRange]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record in `ranges`, each partition in offset order."""
    remaining = {TopicPartition(r.topic, r.partition): r for r in ranges if r.start < r.end}
    if not remaining:
        return
    consumer = kafka.consumer(settings, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(remaining))
        for tp, r in remaining.items():
            consumer.seek(tp, r.start)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batches.items():
                end = remaining[tp].end
                for message in messages:
                    if message.offset < end:
                        yield message
                if messages and messages[-1].offset + 1 >= end:
                    del remaining[tp]
    finally:
        await consumer.stop()


async def read_back(
    settings: Settings, topic: str, since_ms: int
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` with a timestamp from `since_ms` up to the end as of now."""
    async for message in read_ranges(settings, await offset_ranges(settings, topic, since_ms)):
        yield message


async def follow(
    settings: Settings, topic: str, start: Mapping[int, int] | None = None
) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
    """Every record of `topic` from `start` (partition to offset; default: the first there
    is), then each new one as it comes, until the caller stops reading (close it with
    contextlib.aclosing, so the consumer stops then)."""
    partitions = [TopicPartition(topic, p) for p in await kafka.partitions(settings, topic)]
    consumer = kafka.consumer(settings, group_id=None)
    async with kafka.started(consumer):
        consumer.assign(partitions)
        if start is None:
            await consumer.seek_to_beginning(*partitions)
        else:
            for tp in partitions:
                consumer.seek(tp, start[tp.partition])
        while True:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for message in messages:
                    yield message
