"""Redis kept equal to the stream: each batch's newest vectors, and a rebuild when Redis lost some.

Redis can lose writes the feature store made (a restart without persistence, a
flush, a failover to a replica behind). Each partition's mark (`online_store`) says
how far Redis holds this worker's writes; when a mark falls short of what this
worker wrote, or of what the restored state has applied, that partition's entities
are rewritten from `features`: every vector of the feature set's ttl, the newest per
entity, under the same (event time, offset) guard, so nothing newer is overwritten.
Vectors go to the `features` partition numbered like their event's, with the event's
offset in a header, so a partition's rebuild reads one partition and keeps the guard.
"""

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from tideline import catalog, streams
from tideline.durations import epoch_millis
from tideline.errors import DecodeError
from tideline.online_store import Entry, Mark, OnlineWriter, newest
from tideline.settings import Settings

from services.featurestore import metrics

# The header of each vector on `features` that carries its event's offset on `events`.
OFFSET_HEADER = "tideline.event_offset"
CHUNK = 1000  # entities a rebuild writes per script call
CHECK_EVERY_S = 1.0  # how often idle partitions' marks are looked at

log = logging.getLogger(__name__)


class Materializer:
    def __init__(
        self,
        settings: Settings,
        writer: OnlineWriter,
        features: catalog.Bound,
        producer: AIOKafkaProducer,
    ) -> None:
        self.settings, self.writer = settings, writer
        self.features, self.producer = features, producer
        self.expected: dict[int, int] = {}  # partition -> the offset its mark must reach
        self._next_check = 0.0

    async def assigned(self, applied: Mapping[int, int]) -> None:
        """Partitions now owned, each with the newest offset its restored state applied
        (-1: none): any whose mark falls short of it is rebuilt."""
        marks = await self.writer.marks(list(applied))
        lost = [p for p, top in applied.items() if _short(marks[p], top)]
        for p, top in applied.items():
            mark = marks[p]
            self.expected[p] = top if mark is None else max(mark, top)
        if lost:
            await self.rebuild(lost)

    def revoked(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.expected.pop(p, None)

    async def write(self, entries: list[Entry], handled: Mapping[int, int]) -> int:
        """The batch's newest vectors, `handled` its newest offset per partition."""
        marks = {p: Mark(self.expected.get(p, -1), top) for p, top in handled.items()}
        while (written := await self.writer.write(entries, marks)).lost:
            await self.rebuild(written.lost)
        for p, top in handled.items():
            self.expected[p] = max(self.expected.get(p, -1), top)
        return written.keys

    async def check(self) -> None:
        """Rebuild any owned partition whose mark Redis lost, batch or none (at most once a second)."""
        if (now := time.monotonic()) < self._next_check or not self.expected:
            return
        self._next_check = now + CHECK_EVERY_S
        marks = await self.writer.marks(list(self.expected))
        lost = [p for p, m in marks.items() if _short(m, self.expected[p])]
        if lost:
            await self.rebuild(lost)

    async def rebuild(self, partitions: list[int]) -> None:
        started = time.perf_counter()
        await self.producer.flush()  # every vector written so far is on `features`
        since = epoch_millis(datetime.now(UTC)) - self.writer.layout.ttl_ms
        ranges = [
            r
            for r in await streams.offset_ranges(self.settings, self.features.name, since)
            if r.partition in partitions
        ]
        found: dict[str, Entry] = {}
        async for message in streams.read_ranges(self.settings, ranges):
            if (entry := self._entry(message)) is not None:
                newest([entry], found)
        entries = list(found.values())
        await self.rewrite(entries, partitions)
        metrics.REBUILDS.inc()
        metrics.REBUILT.inc(len(entries))
        log.warning(
            "Redis had lost writes of partitions %s: rewrote %d entities from %d ranges"
            " of %s in %.2fs",
            sorted(partitions),
            len(entries),
            len(ranges),
            self.features.name,
            time.perf_counter() - started,
        )

    async def rewrite(self, entries: list[Entry], partitions: Iterable[int]) -> None:
        """Write `entries`, a chunk at a time, with the marks of `partitions` as expected."""
        marks = {p: Mark(-1, self.expected.get(p, -1)) for p in partitions}
        for i in range(0, max(len(entries), 1), CHUNK):
            await self.writer.write(entries[i : i + CHUNK], marks)

    def _entry(self, message: streams.Message) -> Entry | None:
        """The record as an entry to rewrite; None (skipped, counted) if it is not a vector
        of this feature set with an offset (its readers dead-letter it)."""
        # A vector written before they carried their event's offset ties at offset 0:
        # event time still orders it.
        offset = dict(message.headers).get(OFFSET_HEADER, b"0")
        try:
            vector = self.features.decode(message.value)
            if vector["feature_version"] != self.writer.layout.version:
                raise ValueError(f"feature set {vector['feature_version']}")
            at = int(offset)
        except (DecodeError, ValueError) as exc:
            metrics.REBUILD_SKIPPED.inc()
            log.warning("rebuild skipped offset %d of %s: %s", message.offset, message.topic, exc)
            return None
        return Entry(
            vector["entity_id"],
            vector["event_id"],
            epoch_millis(vector["event_time"]),
            at,
            vector["values"],
        )


def _short(mark: int | None, expected: int) -> bool:
    """Whether Redis lacks writes: a mark missing or behind what was written or applied."""
    return expected >= 0 and (mark is None or mark < expected)
