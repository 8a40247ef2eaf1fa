"""Window state in memory, backed by the compacted `featurestore.state` topic.

Each entity's state goes to the changelog partition numbered like the `events`
partition it came from, so the worker that owns an `events` partition restores
exactly its entities from one changelog partition. A changed entity is written
once per batch, before the batch's offsets are committed; the changelog can run
ahead of the commit after a crash, and the state's offsets make the replay harmless.

Each record carries the version of the feature set it was built for. A partition with
state of another version (a definition changed: an aggregation added, removed or
resized) is rebuilt before the worker takes a single event of it: its `events` are
replayed through the very computation of the stream, from the first one kept up to the
newest the old state had applied, and the new state written back. Nothing of the old
state's rows is read, so no layout of another definition can be misread.
"""

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaProducer
from tideline import catalog, dlq, kafka, streams
from tideline.errors import DecodeError, TidelineError
from tideline.online_store import Entry, newest
from tideline.settings import Settings
from tideline.windows import EntityState

from services.featurestore import metrics
from services.featurestore.handler import FeatureStore

log = logging.getLogger(__name__)

TOPIC = catalog.topic("featurestore.state")
REPLAY_BATCH = 2000  # events of a rebuild computed at a time, as the stream polls them


class StateError(TidelineError):
    """The changelog cannot hold this state as the design needs."""


class Progress:
    """A rebuild's progress: the gauge of events left, and a log line each tenth."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.tenths = total, 0, 0
        metrics.STATE_REBUILD_REMAINING.set(total)

    def advance(self, events: int) -> None:
        self.done += events
        metrics.STATE_REBUILD_REMAINING.set(max(0, self.total - self.done))
        if self.total and (tenths := self.done * 10 // self.total) > self.tenths:
            self.tenths = tenths
            log.info("rebuilding window state: %d of %d events", self.done, self.total)


class WindowStates:
    def __init__(
        self,
        settings: Settings,
        store: FeatureStore,
        producer: AIOKafkaProducer,
    ) -> None:
        self.settings, self.store, self.producer = settings, store, producer
        self.events, self.features = store.events, store.features
        self.definition = store.version
        self.changelog_topic = TOPIC.bind(settings)
        self.topic = self.changelog_topic.name
        self.data: dict[str, EntityState] = {}
        self._partition: dict[str, int] = {}  # entity -> the partition that owns it
        # aiokafka may hand out a new assignment's records while the assignment
        # callback still restores: the handler waits on this, which the callback sets.
        self.ready = asyncio.Event()

    async def check_partitions(self) -> None:
        """The changelog and `features` are partitioned as `events` (a worker's share of
        each is the same partitions), so their partitions must match."""
        events = await kafka.partitions(self.settings, self.events.name)
        for topic in (self.topic, self.features.name):
            found = await kafka.partitions(self.settings, topic)
            if events != found:
                raise StateError(
                    f"{topic} has partitions {found}, `events` {events}: they must match"
                )

    async def restore(self, partitions: Iterable[int]) -> tuple[int, dict[int, int]]:
        """Read these partitions' changelog to its end: (entities restored, and per
        partition holding state of another definition, the newest offset it applied)."""
        self.ready.clear()
        wanted = set(partitions)
        ranges = [
            r
            for r in await streams.offset_ranges(self.settings, self.topic)
            if r.partition in wanted
        ]
        stale: dict[str, tuple[int, int]] = {}  # entity: (partition, offset applied)
        async for message in streams.read_ranges(self.settings, ranges):
            entity = message.key.decode(errors="replace") if message.key is not None else ""
            try:
                record = self.changelog_topic.decode(message.value)
                if record["definition"] != self.definition:
                    # its last record decides, as compaction will: a rebuilt entity's
                    # old records stay on the topic until the cleaner runs
                    stale[entity] = (message.partition, record["offset"])
                    self.data.pop(entity, None), self._partition.pop(entity, None)
                    continue
                state = EntityState.from_record(record)
            except (DecodeError, ValueError, TypeError, KeyError) as exc:
                # Not ours (we write only what decodes): skipped, said, counted. A later
                # record of the entity, or its next event, replaces it.
                log.warning(
                    "skipped an unreadable state record at %s/%d/%d: %s",
                    message.topic,
                    message.partition,
                    message.offset,
                    exc,
                )
                metrics.STATE_UNREADABLE.inc()
                continue
            stale.pop(entity, None)
            self.data[entity] = state
            self._partition[entity] = message.partition
        tops: dict[int, int] = {}
        for partition, offset in stale.values():
            tops[partition] = max(tops.get(partition, -1), offset)
        self._forget(tops)  # rebuilt whole, from `events`
        restored = sum(1 for p in self._partition.values() if p in wanted)
        return restored, tops

    async def rebuild(self, stale: Mapping[int, int]) -> list[Entry]:
        """Recompute the state of each partition of `stale` from its `events`, up to the
        offset its old state had applied, write it to the changelog and return each
        entity's newest vector (for Redis). Progress: a log line a tenth of the way and
        `tideline_featurestore_state_rebuild_remaining_events`."""
        started = time.perf_counter()
        ranges = [
            streams.OffsetRange(r.topic, r.partition, r.start, min(r.end, stale[r.partition] + 1))
            for r in await streams.offset_ranges(self.settings, self.events.name)
            if r.partition in stale
        ]
        total = sum(max(0, r.end - r.start) for r in ranges)
        log.warning(
            "partitions %s hold window state of another feature set than %s: rebuilding it"
            " from %d events of %s before taking any new event",
            sorted(stale),
            self.definition,
            total,
            self.events.name,
        )
        metrics.STATE_REBUILDS.inc()
        changed: dict[str, tuple[int, EntityState]] = {}
        latest: dict[str, Entry] = {}
        progress = Progress(total)

        def fold(sources: list[dlq.Source]) -> None:
            # As the stream did; no vector goes to `features` again, nor a dead letter:
            # they did the first time.
            batch = self.store.process(sources, self.data)
            changed.update(batch.changed)
            newest(batch.latest(), latest)
            progress.advance(len(sources))

        pending: list[dlq.Source] = []
        async for message in streams.read_ranges(self.settings, ranges):
            pending.append(dlq.Source.of(message))
            if len(pending) == REPLAY_BATCH:
                fold(pending)
                pending = []
        fold(pending)
        metrics.STATE_REBUILD_REMAINING.set(0)
        await asyncio.gather(*await streams.enqueue(self.producer, self.changelog(changed)))
        log.warning(
            "rebuilt the window state of %d entities of partitions %s from %d events in %.2fs",
            len(changed),
            sorted(stale),
            total,
            time.perf_counter() - started,
        )
        return list(latest.values())

    def applied(self, partitions: Iterable[int]) -> dict[int, int]:
        """Per partition, the newest `events` offset its state has applied (-1: none)."""
        newest = dict.fromkeys(partitions, -1)
        for entity, partition in self._partition.items():
            if partition in newest:
                newest[partition] = max(newest[partition], self.data[entity].offset)
        return newest

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the entities of partitions this worker no longer owns."""
        self.ready.clear()  # until the next assignment is restored
        self._forget(partitions)

    def _forget(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for entity in [e for e, p in self._partition.items() if p in gone]:
            del self.data[entity], self._partition[entity]

    def changelog(self, changed: Mapping[str, tuple[int, EntityState]]) -> list[streams.Produce]:
        """The changelog records of a batch's changed entities."""
        records = []
        for entity, (partition, state) in changed.items():
            self._partition[entity] = partition
            records.append(
                streams.Produce(
                    self.topic,
                    entity.encode(),
                    self.changelog_topic.encode(state.to_record(self.definition)),
                    partition=partition,
                )
            )
        return records
