"""Feature computation over event-time windows: one entity's state, and the vector as of an event.

The stream job, the offline `replay` and therefore the training sets all run this code,
so the values on `features`, in Redis and in a recompute cannot disagree.

Semantics, for an event at time t (milliseconds since the epoch, UTC):
- sliding window of size S: events with time in (t - S, t];
- tumbling window of size S: events in the epoch-aligned bucket holding t, up to t;
- hopping window of size S and step P (windows start at multiples of P): the
  one that holds t and started earliest; events in it up to t.
Only events already seen (arrival order) count, and never one after t: a vector
holds nothing from its event's future. An event more than `allowed_lateness`
behind the newest event time seen for its entity is late: it changes no window
and gets no vector; the caller sends it to the dead-letter topic.

An entity's state is bounded in bytes (`STATE_BYTES`, under the changelog topic's
record limit): an event that would take it over is refused, changes nothing and gets
no vector, like a late one; the entity takes events again as its old rows leave the
windows. Refusing rather than dropping old rows keeps every vector reproducible: a
replay after a crash recomputes each from the rows held, which dropping would lose.
Decided here, per event, so the stream and an offline replay agree.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tideline import catalog
from tideline.durations import millis
from tideline.features import OFFSET, TIME, FeatureSet, Row, Window

# The most an entity's rows may take as JSON: what the changelog admits.
STATE_BYTES = catalog.topic("featurestore.state").value_bytes


def window_start(window: Window, t: int) -> int:
    """The earliest event time, in ms, inside `window` as seen from an event at `t`."""
    return _Span(window).start(t)


class _Span:
    """A window with its sizes in ms, worked out once rather than per event."""

    def __init__(self, window: Window) -> None:
        self.kind = window.kind
        self.size = millis(window.size)
        self.step = millis(window.step) if window.step is not None else 0

    def start(self, t: int) -> int:
        if self.kind == "sliding":
            return t - self.size + 1
        if self.kind == "tumbling":
            return t - t % self.size
        return ((t - self.size) // self.step + 1) * self.step


@dataclass
class EntityState:
    """What one entity's windows hold: the events no future window can do without."""

    offset: int = -1  # the last event applied; a replay at or below it changes nothing
    watermark: int | None = None  # the newest event time applied
    rows: list[Row] = field(default_factory=list)  # in arrival order
    # `rows` as JSON, in bytes (what `STATE_BYTES` bounds): "[" and each row with its
    # separator, so exact once there is a row.
    size: int = field(default=1, compare=False)

    def applied(self, offset: int) -> bool:
        """Whether the event at `offset` was folded in already (a replay after a crash)."""
        return offset <= self.offset

    def to_record(self, definition: str | None = None) -> dict[str, Any]:
        """As a tideline.WindowState record, of the feature set version `definition`."""
        rows = orjson.dumps(self.rows).decode()
        return {
            "offset": self.offset,
            "watermark": self.watermark,
            "rows": rows,
            "definition": definition,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "EntityState":
        rows = [tuple(row) for row in orjson.loads(record["rows"])]
        return cls(record["offset"], record["watermark"], rows, len(record["rows"].encode()))


def _size(row: Row) -> int:
    """Bytes `row` adds to its state's JSON, its comma included."""
    return len(orjson.dumps(row)) + 1


class LateEventError(Exception):
    """The event is older than the entity's newest event time minus the allowed lateness."""


class OversizedEventError(LateEventError):
    """The event would take its entity's state over `STATE_BYTES`: refused, as a late one is."""


class Computer:
    """Computes a feature set's vectors; holds no state of its own."""

    def __init__(self, features: FeatureSet, state_bytes: int = STATE_BYTES) -> None:
        self.features = features
        self.state_bytes = state_bytes
        self.lateness = millis(features.allowed_lateness)
        self.horizon = max((millis(a.window.size) for a in features.aggregations), default=0)
        # The fields rows keep, and where each aggregation finds its field in a row.
        self.fields = sorted({a.field for a in features.aggregations if a.field is not None})
        column = {name: 2 + i for i, name in enumerate(self.fields)}
        windows = list(dict.fromkeys(a.window for a in features.aggregations))
        self._spans = [_Span(w) for w in windows]
        # Resolved once, not per event: (name, reduction, index of its window, its field's
        # column; count reads none) and (name, computation, field) from the kinds' tables.
        self._aggregations = [
            (a.name, a.spec.reduce, windows.index(a.window), column.get(a.field or "", 0))
            for a in features.aggregations
        ]
        self._transforms = [(tr.name, tr.spec.compute, tr.field) for tr in features.transforms]

    def apply(
        self, state: EntityState, t: int, offset: int, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Fold the event into `state` and return its feature values, as of the event.

        An event at or below `state.offset` was seen before (a replay after a crash):
        its values are recomputed from what is held and the state is left as it is.
        """
        if state.applied(offset):
            if not any(row[OFFSET] == offset for row in state.rows):
                raise LateEventError(f"event at offset {offset} was late when first seen")
        else:
            if state.watermark is not None and t < state.watermark - self.lateness:
                state.offset = offset
                raise LateEventError(
                    f"event time {t} is more than {self.lateness} ms behind the entity's"
                    f" newest event time {state.watermark}"
                )
            row = (t, offset, *(payload.get(f) for f in self.fields))
            watermark = t if state.watermark is None else max(state.watermark, t)
            oldest = watermark - self.lateness - self.horizon
            kept, dropped = state.rows, 0
            if kept and kept[0][TIME] < oldest:
                dropped = sum(_size(r) for r in kept if r[TIME] < oldest)
                kept = [r for r in kept if r[TIME] >= oldest]
            size = state.size - dropped + _size(row)
            if size > self.state_bytes:
                state.offset = offset
                raise OversizedEventError(
                    f"the entity's state would take {size} bytes, at most {self.state_bytes}"
                )
            kept.append(row)
            state.rows, state.size, state.offset, state.watermark = kept, size, offset, watermark
        return self._values(state.rows, t, offset, payload)

    def _values(
        self, rows: Sequence[Row], t: int, offset: int, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        values = {
            name: compute(t, payload.get(field) if field else None)
            for name, compute, field in self._transforms
        }
        held = [row for row in rows if row[TIME] <= t and row[OFFSET] <= offset]
        in_window = []
        for span in self._spans:
            start = span.start(t)
            in_window.append([row for row in held if row[TIME] >= start])
        for name, reduce, window, column in self._aggregations:
            values[name] = reduce(in_window[window], column)
        return values


@dataclass(frozen=True)
class Event:
    """What feature computation needs of one event."""

    entity: str
    t: int
    offset: int
    payload: Mapping[str, Any]
    event_id: str = ""


def replay(
    features: FeatureSet, events: Iterable[Event]
) -> Iterator[tuple[Event, dict[str, Any] | None]]:
    """Each event with its vector (None if late), computed offline in the given order.

    Give each entity's events in the order the stream saw them (partition offset
    order) and this yields exactly what the stream job emitted.
    """
    computer = Computer(features)
    states: dict[str, EntityState] = {}
    for event in events:
        state = states.setdefault(event.entity, EntityState())
        try:
            yield event, computer.apply(state, event.t, event.offset, event.payload)
        except LateEventError:
            yield event, None
