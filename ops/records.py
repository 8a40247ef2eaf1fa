"""Several topics read as one stream in time order: what operators' tools show.

What the topics hold now comes first, merged by record timestamp across topics (a
topic by topic replay would show a drift after the promotion it caused); then each
new record as it arrives. Every record is decoded with its topic's schema, a newer or
older release's through the schema store; one that cannot be is passed on as
unreadable rather than stopping the reader.
"""

import asyncio
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from tideline import catalog, schema_store, streams
from tideline.errors import DecodeError
from tideline.settings import Settings


@dataclass(frozen=True)
class Seen:
    topic: str  # the catalog name, without the prefix
    timestamp_ms: int
    record: dict[str, Any] | None  # None: unreadable, `error` says why
    error: str | None = None
    live: bool = False  # arrived after the reader started


def _seen(bound: catalog.Bound, name: str, message: streams.Message, live: bool) -> Seen:
    try:
        return Seen(name, message.timestamp, bound.decode(message.value), live=live)
    except DecodeError as exc:
        return Seen(name, message.timestamp, None, str(exc), live)


async def merged(
    settings: Settings,
    names: Iterable[str],
    history: bool = True,
    caught_up: asyncio.Event | None = None,
) -> AsyncGenerator[Seen, None]:
    """Records of catalog topics `names`: what they hold now in time order (unless
    `history` is False), then each new one as it comes, until the caller stops reading.
    `caught_up` is set once the history is handed over."""
    bound = {name: catalog.topic(name).bind(settings) for name in names}
    ranges = {n: await streams.offset_ranges(settings, b.name) for n, b in bound.items()}
    store = schema_store.Store(settings, "records")
    try:
        await store.start()
        if history:
            kept = []
            for name, found in ranges.items():
                messages = [message async for message in streams.read_ranges(settings, found)]
                await store.ensure(m.value for m in messages)
                kept += [_seen(bound[name], name, m, live=False) for m in messages]
            for seen in sorted(kept, key=lambda s: s.timestamp_ms):  # stable: a topic's order
                yield seen
        if caught_up is not None:
            caught_up.set()
        async with aclosing(_live(settings, bound, ranges, store)) as live:
            async for seen in live:
                yield seen
    finally:
        await store.stop()


async def _live(
    settings: Settings,
    bound: dict[str, catalog.Bound],
    ranges: dict[str, list[streams.OffsetRange]],
    store: schema_store.Store,
) -> AsyncGenerator[Seen, None]:
    """Each record that arrives on the topics after `ranges`, as it comes."""
    queue: asyncio.Queue[Seen] = asyncio.Queue()

    async def pump(name: str) -> None:
        start = {r.partition: r.end for r in ranges[name]}
        async with aclosing(streams.follow(settings, bound[name].name, start)) as found:
            async for message in found:
                await store.ensure([message.value])
                await queue.put(_seen(bound[name], name, message, live=True))

    pumps = [asyncio.create_task(pump(name)) for name in bound]
    try:
        while True:
            getting = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait([getting, *pumps], return_when=asyncio.FIRST_COMPLETED)
            if getting in done:
                yield getting.result()
                continue
            getting.cancel()
            for task in done:
                await task  # a pump that ended raised: let it show
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
