"""Predictions joined with their labels, which arrive later (days or weeks, on the business's
clock) or, now and then, first.

Each side waits for the other up to the horizon, in event time: a prediction until
the newest time the join has seen (prediction event times and label times) is more
than the horizon past its event time; a label likewise past its label time. A label
stays after joining, for the challenger's shadow prediction or a late one, and
remembers which versions it was joined with, so a prediction written twice (a batch
redone after a crash) counts once. A later label with another value corrects it, for
the predictions still to join; the monitor revises those already joined.

The join outlives a restart: at each published interval, every entry still waiting
that changed (a prediction with no label yet, a label with no prediction yet) is a
record of the compacted `monitor.joins` topic (`changes`), and one written before that
has joined or left is a tombstone. Those records go out with the interval's metrics,
before its offsets are committed, so the topic holds the join as of the committed
offsets: a restarted monitor reads it back (`restore`) and the records after them again.
An event joined within one interval is never written at all.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

Record = dict[str, Any]
Side = tuple[int, bool]  # (model version, shadow)


@dataclass
class _Label:
    value: Any
    label_time: int  # ms
    joined: set[Side] = field(default_factory=set)


@dataclass
class _Entry:
    """One event's side of the join: its predictions waiting, its label if it came."""

    predictions: dict[Side, Record] = field(default_factory=dict)
    label: _Label | None = None

    @property
    def time(self) -> int:
        """What its expiry is measured from: the label's time, or the oldest prediction's."""
        if self.label is not None:
            return self.label.label_time
        return int(min(p["event_time"] for p in self.predictions.values()))


@dataclass(frozen=True)
class Joined:
    prediction: Record  # a tideline.Prediction, event_time in ms
    label: Any
    label_delay_ms: int


# What a prediction keeps while it waits: what the monitor judges it on.
KEPT = ("event_id", "model_version", "shadow", "score", "event_time")


class Joiner:
    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._entries: dict[str, _Entry] = {}  # in arrival order
        self.watermark = 0  # the newest event time or label time seen
        self.waiting_predictions = 0  # predictions no label has joined yet
        self.waiting_labels = 0  # labels no prediction has joined yet
        self.unlabelled = 0  # predictions whose label never came within the horizon
        self.orphans = 0  # labels no prediction came for
        self.joined = 0  # predictions joined with their label
        self._changed: set[str] = set()  # event ids whose entry changed since `changes`
        self._written: set[str] = set()  # event ids with a record on the changelog

    @property
    def pending(self) -> int:
        """Predictions waiting for their label, and labels for their prediction."""
        return self.waiting_predictions + self.waiting_labels

    def prediction(self, record: Record) -> Joined | None:
        event_id = record["event_id"]
        self.watermark = max(self.watermark, record["event_time"])
        entry = self._entries.get(event_id)
        if entry is None:
            entry = self._entries[event_id] = _Entry()
        if entry.label is None:
            side = (record["model_version"], record["shadow"])
            self.waiting_predictions += side not in entry.predictions  # a repeat: once
            entry.predictions[side] = {k: record[k] for k in KEPT}
            self._changed.add(event_id)
            return None
        return self._join(event_id, record, entry.label)

    def corrects(self, event_id: str, value: Any) -> bool:
        """Whether a label of `value` for `event_id` corrects the one held here."""
        entry = self._entries.get(event_id)
        return entry is not None and entry.label is not None and entry.label.value != value

    def label(self, event_id: str, value: Any, label_time: int) -> list[Joined]:
        self.watermark = max(self.watermark, label_time)
        entry = self._entries.get(event_id)
        if entry is None:
            entry = self._entries[event_id] = _Entry()
        if entry.label is None:
            entry.label = _Label(value, label_time)
            self.waiting_labels += 1
        elif entry.label.value != value:  # a correction: predictions still to come join it
            entry.label.value = value
        self._changed.add(event_id)
        waiting, entry.predictions = entry.predictions, {}
        self.waiting_predictions -= len(waiting)
        return [j for p in waiting.values() if (j := self._join(event_id, p, entry.label))]

    def _join(self, event_id: str, prediction: Record, label: _Label) -> Joined | None:
        side = (prediction["model_version"], prediction["shadow"])
        if side in label.joined:
            return None
        if not label.joined:
            self.waiting_labels -= 1
        label.joined.add(side)
        self.joined += 1
        self._changed.add(event_id)
        return Joined(prediction, label.value, label.label_time - prediction["event_time"])

    def expire(self) -> None:
        """Let go of what waited past the horizon (oldest arrivals first)."""
        limit = self.watermark - self.horizon_ms
        while self._entries:
            event_id, entry = next(iter(self._entries.items()))
            if entry.time > limit:
                break
            del self._entries[event_id]
            self._changed.add(event_id)
            self.unlabelled += len(entry.predictions)
            self.waiting_predictions -= len(entry.predictions)
            if entry.label is not None and not entry.label.joined:
                self.orphans += 1
                self.waiting_labels -= 1

    # -- what outlives a restart --

    def changes(self) -> list[tuple[str, Record | None]]:
        """Each waiting entry changed since the last call, as a tideline.PendingJoin record,
        and a tombstone (None) for each written before that no longer waits."""
        changed, self._changed = self._changed, set()
        found: list[tuple[str, Record | None]] = []
        for event_id in changed:
            record = self._record(event_id)
            if record is not None:
                found.append((event_id, record))
                self._written.add(event_id)
            elif event_id in self._written:
                found.append((event_id, None))
                self._written.discard(event_id)
        return found

    def _record(self, event_id: str) -> Record | None:
        entry = self._entries.get(event_id)
        if entry is None:
            return None
        label = entry.label
        if label is not None and label.joined:
            return None  # joined: nothing waits
        held = None
        if label is not None:
            held = {"value": orjson.dumps(label.value).decode(), "label_time": label.label_time}
        return {
            "event_id": event_id,
            "predictions": list(entry.predictions.values()),
            "label": held,
        }

    def restore(self, records: Iterable[Record]) -> None:
        """Take back the entries of tideline.PendingJoin records (event times in ms)."""
        for record in records:
            entry = _Entry({(p["model_version"], p["shadow"]): p for p in record["predictions"]})
            held = record["label"]
            if held is not None:
                entry.label = _Label(orjson.loads(held["value"]), held["label_time"])
                self.waiting_labels += 1
            event_id = record["event_id"]
            self._entries[event_id] = entry
            self._written.add(event_id)
            self.waiting_predictions += len(entry.predictions)
            self.watermark = max(self.watermark, entry.time)
