"""Predictions joined with their labels, which arrive later (or, now and then, first).

Each side waits up to the join window for the other. A label stays after joining,
for the challenger's shadow prediction or a late one, and remembers which versions
it was joined with, so a prediction written twice (a batch redone after a crash)
counts once. A later label with another value corrects it, for the predictions still
to join; the monitor revises those already joined.
"""

from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


@dataclass
class _Label:
    value: Any
    label_time: int  # ms
    arrived: float
    joined: set[tuple[int, bool]] = field(default_factory=set)  # (version, shadow)


@dataclass(frozen=True)
class Joined:
    prediction: Record  # a tideline.Prediction, event_time in ms
    label: Any
    label_delay_ms: int


class Joiner:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._predictions: dict[str, list[tuple[Record, float]]] = {}
        self._labels: dict[str, _Label] = {}
        self.unlabelled = 0  # predictions whose label never came within the window
        self.orphans = 0  # labels no prediction came for

    def prediction(self, record: Record, now: float) -> Joined | None:
        label = self._labels.get(record["event_id"])
        if label is None:
            self._predictions.setdefault(record["event_id"], []).append((record, now))
            return None
        return self._join(record, label)

    def corrects(self, event_id: str, value: Any) -> bool:
        """Whether a label of `value` for `event_id` corrects the one waiting here."""
        label = self._labels.get(event_id)
        return label is not None and label.value != value

    def label(self, event_id: str, value: Any, label_time: int, now: float) -> list[Joined]:
        label = self._labels.get(event_id)
        if label is None:
            label = self._labels[event_id] = _Label(value, label_time, now)
        elif label.value != value:  # a correction: predictions still to come join it
            label.value = value
        waiting = self._predictions.pop(event_id, [])
        return [j for record, _ in waiting if (j := self._join(record, label)) is not None]

    def _join(self, record: Record, label: _Label) -> Joined | None:
        key = (record["model_version"], record["shadow"])
        if key in label.joined:
            return None
        label.joined.add(key)
        return Joined(record, label.value, label.label_time - record["event_time"])

    def expire(self, now: float) -> None:
        """Forget what waited longer than the window (both dicts are in arrival order)."""
        limit = now - self.window_s
        while self._predictions:
            event_id, waiting = next(iter(self._predictions.items()))
            if waiting[0][1] > limit:
                break
            del self._predictions[event_id]
            self.unlabelled += len(waiting)
        while self._labels:
            event_id, label = next(iter(self._labels.items()))
            if label.arrived > limit:
                break
            del self._labels[event_id]
            self.orphans += not label.joined

    @property
    def pending(self) -> int:
        return len(self._predictions) + len(self._labels)
