"""What starts a run: drift events, training requests, the schedule and the follow-ups of
a drift run, as Triggers."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from tideline import catalog

REQUESTS, DRIFT = catalog.topic("training.requests"), catalog.topic("monitor.drift")


@dataclass(frozen=True)
class Trigger:
    kind: str  # drift, request, schedule or follow-up
    id: str  # the drift event id, the request id, the schedule's time, or the follow-up's
    since: datetime | None = None  # drift, follow-up: train on labels of events after this
    max_rows: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    source: tuple[str, int, int] | None = None  # topic, partition, offset

    @property
    def record(self) -> dict[str, str]:
        """As a tideline.Trigger record."""
        return {"kind": self.kind, "id": self.id}


class Decoder:
    """Triggers for one model from `training.requests` and `monitor.drift` records."""

    def __init__(self, model_name: str, requests: catalog.Bound, drift: catalog.Bound) -> None:
        self.model_name, self.requests, self.drift = model_name, requests, drift

    def decode(self, message: ConsumerRecord[bytes, bytes]) -> Trigger | None:
        """The trigger a record asks for; None if it is for another model. DecodeError if
        it is not a record of its topic."""
        source = (message.topic, message.partition, message.offset)
        record: dict[str, Any]
        if message.topic == self.requests.name:
            record = self.requests.decode(message.value)
            if record["model_name"] != self.model_name:
                return None
            return Trigger(
                "request",
                record["request_id"],
                max_rows=record["max_rows"],
                params=record["params"],
                source=source,
            )
        record = self.drift.decode(message.value)
        if record["model_name"] != self.model_name:
            return None
        return Trigger("drift", record["drift_id"], since=record["window_end"], source=source)


class Schedule:
    """Runs every `every`, and after every `labels` new labels; either may be off."""

    def __init__(self, every: timedelta | None, labels: int | None, now: datetime, seen: int):
        self.every, self.labels = every, labels
        self._last, self._seen = now, seen

    def due(self, now: datetime, labels_seen: int) -> Trigger | None:
        reason = None
        if self.every is not None and now - self._last >= self.every:
            reason = f"every {self.every}"
        elif self.labels is not None and labels_seen - self._seen >= self.labels:
            reason = f"{labels_seen - self._seen} new labels"
        if reason is None:
            return None
        self._last, self._seen = now, labels_seen
        return Trigger("schedule", f"{now.isoformat()} ({reason})")


class FollowUps:
    """After a drift run, retrain on the growing window of post-drift labels: when
    `multiples` times the labels the drift run waited for have been written (2x, 4x...),
    so a gradual or continuing drift is followed and the new concept is learnt from more
    than the first run's labels. Counted in labels, as written on `labels` (end offsets);
    a new drift starts the series over; the registry's gate keeps a follow-up only if it
    beats the champion."""

    def __init__(self, multiples: Sequence[int]) -> None:
        self.multiples = sorted(set(multiples))  # each above 1 (TrainerSettings checks)
        self._drift: Trigger | None = None
        self._base = self._from = 0
        self._left: list[int] = []

    @property
    def pending(self) -> bool:
        return bool(self._left)

    def start(self, drift: Trigger, labels: int, seen: int) -> None:
        """The drift run that waited for `labels` labels cut its data when `seen` were in."""
        self._drift, self._base, self._from = drift, labels, seen
        self._left = list(self.multiples)

    def stop(self) -> None:
        self._left = []

    def due(self, seen: int) -> Trigger | None:
        drift = self._drift
        if drift is None or not self.pending:
            return None
        multiple = self._left[0]
        if seen - self._from < (multiple - 1) * self._base:
            return None
        self._left.pop(0)
        return Trigger(
            "follow-up", f"{drift.id} x{multiple} ({multiple * self._base} labels)", drift.since
        )
