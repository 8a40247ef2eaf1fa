"""Range readers on the real broker: inside `kafka.readers` a service's reads reuse their
clients, one borrower at a time, and read exactly what a new client reads."""

import asyncio

import pytest
from tideline import catalog, kafka, streams
from tideline.settings import Settings

from .services.running import produce

pytestmark = pytest.mark.integration

TOPIC = catalog.topic("labels")


async def _read(settings: Settings, ranges: list[streams.OffsetRange]) -> list[bytes]:
    """What `ranges` hold, partition by partition, each in offset order."""
    found = [m async for m in streams.read_ranges(settings, ranges)]
    return [m.value or b"" for m in sorted(found, key=lambda m: (m.partition, m.offset))]


async def test_reads_reuse_one_client_and_read_what_a_new_one_reads(settings: Settings) -> None:
    await kafka.create_topics(settings)
    values = [f"v{i}".encode() for i in range(50)]
    await produce(settings, TOPIC.name, values, keys=[f"k{i % 7}".encode() for i in range(50)])
    name = TOPIC.full_name(settings)
    alone = await _read(settings, await streams.offset_ranges(settings, name))
    assert sorted(alone) == sorted(values)  # every record, each once
    async with kafka.readers(settings) as pool:
        for _ in range(3):
            ranges = await streams.offset_ranges(settings, name)
            assert await _read(settings, ranges) == alone
        assert len(pool.idle) == 1  # the same client, lent four times
        assert pool.admin is not None  # and the partitions asked of one admin client
        # another prefix, the same cluster and principal: the same clients serve it
        other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "x."})
        await streams.offset_ranges(other, name)
        assert len(pool.idle) == 1
        # at once, each reader has a client of its own
        both = await asyncio.gather(_read(settings, ranges), _read(settings, ranges))
        assert list(both) == [alone, alone]
        assert len(pool.idle) == 2
        # a reader left half way is stopped, not lent again with its assignment
        lent = set(map(id, pool.idle))
        async with asyncio.timeout(30):
            reading = streams.read_ranges(settings, ranges)
            await anext(reading)
            assert len(pool.idle) == 1
            await reading.aclose()
        assert len(pool.idle) == 1
        assert id(pool.idle[0]) in lent
        # and the next read is whole again
        assert await _read(settings, ranges) == alone
    assert pool.idle == []  # stopped on the way out
    assert pool.admin is None


async def test_a_range_that_ends_in_a_transaction_marker_still_ends(settings: Settings) -> None:
    """A range's end need not be its last record's offset plus one: a transaction's commit
    marker takes an offset (and compaction removes records): the read ends by position."""
    await kafka.create_topics(settings)
    name = TOPIC.full_name(settings)
    producer = kafka.producer(settings, transactional_id=f"{settings.topic_prefix}tx")
    async with kafka.started(producer), producer.transaction():
        for value in (b"a", b"b"):
            await producer.send(name, value, key=b"k", partition=0)
    (found,) = [r for r in await streams.offset_ranges(settings, name) if r.partition == 0]
    assert found.end == found.start + 3  # two records, then the marker
    async with asyncio.timeout(30):
        assert await _read(settings, [found]) == [b"a", b"b"]
        async with kafka.readers(settings):
            assert await _read(settings, [found]) == [b"a", b"b"]
