"""The one consumer loop of the project, around a service's pure handler: consume, handle,
produce (outputs and dead letters), commit; and the readers of offset ranges.

At-least-once: a batch's offsets are committed only after every output of it is
acknowledged; handlers make the repeats harmless (dedup, event-time guards).
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from tideline import dlq, kafka, schema_store
from tideline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Produce:
    topic: str  # full topic name
    key: bytes | None
    value: bytes | None  # None: a tombstone, on a compacted topic
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: by key, as the producer's partitioner does


@dataclass
class Outcome:
    """What a handler made of a batch: records to send, and records it refused, each with
    its reason (the loop writes those to the dead-letter topic). Errors are data."""

    produce: list[Produce] = field(default_factory=list)
    rejected: list[tuple[dlq.Source, dlq.RejectionError]] = field(default_factory=list)

    def __iadd__(self, other: "Outcome") -> "Outcome":
        self.produce += other.produce
        self.rejected += other.rejected
        return self


Message: TypeAlias = ConsumerRecord[bytes, bytes]
Messages: TypeAlias = list[Message]
Batches: TypeAlias = dict[TopicPartition, Messages]  # one poll's records, by partition
Offsets = dict[TopicPartition, int]


async def _idle(batches: Batches) -> None:
    pass


async def _nothing() -> Outcome:
    return Outcome()


@dataclass
class Job:
    """What a service's loop runs: `handle` each polled batch; `tick` after every poll,
    batch or none (a periodic publication, a schedule); `committable` says, from the
    offsets handled so far, how far each partition may be committed (default: all of
    them, once their outputs are acknowledged)."""

    handle: Callable[[Messages], Awaitable[Outcome]]
    tick: Callable[[], Awaitable[Outcome]] = _nothing
    committable: Callable[[Offsets], Offsets] = lambda handled: handled
    max_records: int = 2000


DeadLetter = Callable[[dlq.Source, dlq.RejectionError], Produce]


async def enqueue(producer: AIOKafkaProducer, outs: list[Produce]) -> list[asyncio.Future[Any]]:
    """Hand `outs` to the producer, in order; the futures resolve as the broker acknowledges."""
    return [
        await producer.send(
            out.topic,
            out.value,
            key=out.key,
            partition=out.partition,
            timestamp_ms=out.timestamp_ms,
            headers=list(out.headers),
        )
        for out in outs
    ]


async def run(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    job: Job,
    dead_letter: DeadLetter,
    stop: asyncio.Event,
    on_poll: Callable[[Batches], Awaitable[None]] = _idle,
) -> None:
    """Until `stop` is set: poll a batch, hand it to the job, send its outputs and the
    dead letters of what it refused, commit.

    Offsets are committed once all outputs sent until then are acknowledged, by a task
    of their own, in order: the next batch is polled and handled meanwhile, so a
    record does not wait for the round trips of the batch before it.
    """
    acknowledged: asyncio.Queue[tuple[list[asyncio.Future[Any]], Offsets] | None]
    acknowledged = asyncio.Queue(maxsize=8)  # batches in flight; more waits for the broker

    async def commit_in_order() -> None:
        while (batch := await acknowledged.get()) is not None:
            pending, offsets = batch
            await asyncio.gather(*pending)
            if not offsets:
                continue
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The partitions moved to another member while this batch was in flight:
                # it reads them from the last commit, so the batch is redone, not lost.
                log.warning("batch not committed, partitions reassigned: %s", exc)

    async def send(outcome: Outcome) -> list[asyncio.Future[Any]]:
        outs = outcome.produce + [dead_letter(*refused) for refused in outcome.rejected]
        return await enqueue(producer, outs)

    handled: Offsets = {}
    committed: Offsets = {}
    committer = asyncio.create_task(commit_in_order())
    try:
        while not stop.is_set() and not committer.done():
            batches = await consumer.getmany(timeout_ms=200, max_records=job.max_records)
            await on_poll(batches)
            messages = [message for batch in batches.values() for message in batch]
            await schema_store.ensure(m.value for m in messages)
            pending = await send(await job.handle(messages)) if messages else []
            pending += await send(await job.tick())
            handled |= {tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch}
            offsets = {
                tp: offset
                for tp, offset in job.committable(dict(handled)).items()
                if committed.get(tp) != offset
            }
            if offsets:
                committed |= offsets
                await acknowledged.put((pending, offsets))
            elif pending:  # outputs with nothing to commit yet: acknowledged all the same
                await acknowledged.put((pending, {}))
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
    async with kafka.reader(settings) as consumer:
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
    return [
        OffsetRange(topic, tp.partition, starts[tp], max(starts[tp], stops[tp]))
        for tp in partitions
    ]


async def read_ranges(
    settings: Settings, ranges: list[OffsetRange]
) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
    """Every record in `ranges`, each partition in offset order."""
    remaining = {TopicPartition(r.topic, r.partition): r for r in ranges if r.start < r.end}
    if not remaining:
        return
    async with kafka.reader(settings) as consumer:
        consumer.assign(list(remaining))
        for tp, r in remaining.items():
            consumer.seek(tp, r.start)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            await schema_store.ensure(m.value for ms in batches.values() for m in ms)
            for tp, messages in batches.items():
                end = remaining[tp].end
                for message in messages:
                    if message.offset < end:
                        yield message
            # by position, not the last record's offset: compaction may have removed the
            # range's last records, and a transaction's marker is none
            for tp, r in list(remaining.items()):
                if await consumer.position(tp) >= r.end:
                    del remaining[tp]


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
            batches = await consumer.getmany(timeout_ms=1000)
            await schema_store.ensure(m.value for ms in batches.values() for m in ms)
            for messages in batches.values():
                for message in messages:
                    yield message
