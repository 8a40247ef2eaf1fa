"""The feature store as a pure function of (batch of events, window state) to outputs."""

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tideline import catalog, dlq, windows
from tideline.dlq import RejectionError, Source
from tideline.durations import epoch_millis
from tideline.online_store import Entry, newest
from tideline.project import Project


@dataclass(frozen=True)
class Vector:
    entry: Entry
    record: bytes  # the FeatureVector, single-object encoded, for `features`
    partition: int  # of its event on `events`


@dataclass
class Batch:
    vectors: list[Vector] = field(default_factory=list)  # in input order
    rejected: list[tuple[Source, RejectionError]] = field(default_factory=list)
    # entity -> (partition it was read from, its state now): the changelog's share
    changed: dict[str, tuple[int, windows.EntityState]] = field(default_factory=dict)
    replays: int = 0

    def latest(self) -> list[Entry]:
        """Each entity's newest vector of the batch: all the online store needs."""
        return list(newest((v.entry for v in self.vectors), {}).values())


class FeatureStore:
    def __init__(
        self,
        project: Project,
        events: catalog.Bound,
        features: catalog.Bound,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.computer = windows.Computer(project.features)
        self.events, self.features = events, features
        self.vector_bytes = features.topic.value_bytes
        self.version = project.features.version
        self.clock = clock

    def process(
        self, records: Iterable[Source], states: MutableMapping[str, windows.EntityState]
    ) -> Batch:
        batch = Batch()
        computed_at = epoch_millis(self.clock())
        for source, event in dlq.decoded(self.events, records, batch.rejected):
            entity = event["entity_id"]
            state = states.get(entity)
            if state is None:
                state = states[entity] = windows.EntityState()
            t = epoch_millis(event["event_time"])
            replay = state.applied(source.offset)
            try:
                values = self.computer.apply(state, t, source.offset, event["payload"])
            except windows.OversizedEventError as exc:
                batch.rejected.append((source, RejectionError("size", "StateTooLarge", str(exc))))
                values = None
            except windows.LateEventError as exc:
                batch.rejected.append((source, RejectionError("late", "LateEvent", str(exc))))
                values = None
            if replay:
                batch.replays += 1
            else:
                batch.changed[entity] = (source.partition, state)
            if values is None:
                continue
            vector = {
                "event_id": event["event_id"],
                "entity_id": entity,
                "event_time": t,  # fastavro takes epoch ms as they are: cheaper than a datetime
                "feature_version": self.version,
                "computed_at": computed_at,
                "values": values,
            }
            record = self.features.encode(vector)
            if len(record) > self.vector_bytes:
                why = f"its vector takes {len(record)} bytes, `features` admits {self.vector_bytes}"
                batch.rejected.append((source, RejectionError("size", "VectorTooLarge", why)))
                continue
            entry = Entry(entity, event["event_id"], t, source.offset, values)
            batch.vectors.append(Vector(entry, record, source.partition))
        return batch
