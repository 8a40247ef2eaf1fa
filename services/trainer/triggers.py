"""What starts a run: drift events, training requests and the schedule, as Triggers."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from tideline import catalog

REQUESTS, DRIFT = catalog.topic("training.requests"), catalog.topic("monitor.drift")


@dataclass(frozen=True)
class Trigger:
    kind: str  # drift, request or schedule
    id: str  # the drift event id, the request id, or the schedule's time
    since: datetime | None = None  # drift: train on labels of events after this
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
