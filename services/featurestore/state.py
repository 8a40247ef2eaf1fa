"""Window state in memory, backed by the compacted `featurestore.state` topic.

Each entity's state goes to the changelog partition numbered like the `events`
partition it came from, so the worker that owns an `events` partition restores
exactly its entities from one changelog partition. A changed entity is written
once per batch, before the batch's offsets are committed; the changelog can run
ahead of the commit after a crash, and the state's offsets make the replay harmless.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping

from tideline import catalog, kafka, streams
from tideline.errors import DecodeError, TidelineError
from tideline.settings import Settings
from tideline.windows import EntityState

from services.featurestore import metrics

log = logging.getLogger(__name__)

TOPIC = catalog.topic("featurestore.state")


class StateError(TidelineError):
    """The changelog cannot hold this state as the design needs."""


class WindowStates:
    def __init__(self, settings: Settings, events: catalog.Bound, features: catalog.Bound) -> None:
        self.settings, self.events, self.features = settings, events, features
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

    async def restore(self, partitions: Iterable[int]) -> int:
        """Read these partitions' changelog to its end; returns the entities restored."""
        self.ready.clear()
        wanted = set(partitions)
        ranges = [
            r
            for r in await streams.offset_ranges(self.settings, self.topic)
            if r.partition in wanted
        ]
        count = 0
        async for message in streams.read_ranges(self.settings, ranges):
            entity = message.key.decode(errors="replace") if message.key is not None else ""
            try:
                state = EntityState.from_record(self.changelog_topic.decode(message.value))
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
            self.data[entity] = state
            self._partition[entity] = message.partition
            count += 1
        return count

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
                    self.changelog_topic.encode(state.to_record()),
                    partition=partition,
                )
            )
        return records
