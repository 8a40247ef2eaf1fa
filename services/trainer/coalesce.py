"""One training run per model at a time: what to do with a trigger, as a pure decision.

A trigger joins the run in progress only while that run has not cut its training data
yet (it is waiting for post-drift labels, or about to read): that run will see the
labels the trigger is about, so a burst of drift events, or a request sent twice, is one
run. A trigger after the cut would be lost in it, so it is queued and starts the next
run the moment this one ends; later triggers join the queued run. A drift trigger joins
only a drift run: any other run trains on the old concept. A step of the online line
(`online`) is a run of its own, joined by nothing and joining nothing.

Triggers that came from Kafka are committed only once resolved: when the run they
started or joined has ended. `commit_offsets` says how far that is per partition.
"""

from dataclasses import dataclass, field
from typing import Literal

from services.trainer.triggers import Trigger

Outcome = Literal["start", "queued", "joined"]


@dataclass
class _Run:
    trigger: Trigger
    joined: list[Trigger] = field(default_factory=list)
    cut: bool = False  # its training data is read: a new trigger would not be in it

    def takes(self, trigger: Trigger) -> bool:
        if self.cut or "online" in (trigger.kind, self.trigger.kind):
            return False
        return trigger.kind != "drift" or self.trigger.kind == "drift"


class Coalescer:
    def __init__(self) -> None:
        self.running: _Run | None = None
        self.queued: _Run | None = None
        self._seen: dict[tuple[str, int], int] = {}

    def seen(self, source: tuple[str, int, int]) -> None:
        """A record was read (a trigger, or one for another model): commit up to it."""
        topic, partition, offset = source
        self._seen[(topic, partition)] = offset

    def offer(self, trigger: Trigger) -> Outcome:
        if trigger.source is not None:
            self.seen(trigger.source)
        if self.running is None:
            self.running = _Run(trigger)
            return "start"
        if self.running.takes(trigger):
            self.running.joined.append(trigger)
            return "joined"
        if self.queued is None:
            self.queued = _Run(trigger)
            return "queued"
        if trigger.kind == "drift" and self.queued.trigger.kind != "drift":
            # the next run must wait for the new concept's labels: the drift leads it
            self.queued = _Run(trigger, [self.queued.trigger, *self.queued.joined])
            return "queued"
        self.queued.joined.append(trigger)
        return "joined"

    def cut(self) -> None:
        """The run in progress has read its training data."""
        if self.running is not None:
            self.running.cut = True

    def finish(self) -> Trigger | None:
        """The run in progress ended; the queued one, if any, starts now."""
        self.running, self.queued = self.queued, None
        return None if self.running is None else self.running.trigger

    def commit_offsets(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): the offset to commit, below every unresolved trigger."""
        unresolved = [
            t.source
            for run in (self.running, self.queued)
            if run is not None
            for t in (run.trigger, *run.joined)
            if t.source is not None
        ]
        commits = {tp: offset + 1 for tp, offset in self._seen.items()}
        for topic, partition, offset in unresolved:
            commits[(topic, partition)] = min(commits[(topic, partition)], offset)
        return commits
