"""One training run per model at a time: what to do with a trigger, as a pure decision.

While a run is in progress, and for `cooldown` seconds after it ends, new triggers
join it instead of starting another: a burst of drift events, or a request sent twice,
yields one run. One exception: a drift that arrives while a run for another reason is
in progress (or cooling down) is queued, or started, right after it, since that run
trained on the old concept.

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


class Coalescer:
    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self.running: _Run | None = None
        self.queued: _Run | None = None
        self._ended_at = float("-inf")
        self._ended_kind = ""
        self._seen: dict[tuple[str, int], int] = {}

    def seen(self, source: tuple[str, int, int]) -> None:
        """A record was read (a trigger, or one for another model): commit up to it."""
        topic, partition, offset = source
        self._seen[(topic, partition)] = offset

    def offer(self, trigger: Trigger, now: float) -> Outcome:
        if trigger.source is not None:
            self.seen(trigger.source)
        if self.running is None:
            cooling = now - self._ended_at < self.cooldown_s
            if cooling and not (trigger.kind == "drift" and self._ended_kind != "drift"):
                return "joined"  # into the run that just ended: resolved at once
            self.running = _Run(trigger)
            return "start"
        if trigger.kind == "drift" and self.running.trigger.kind != "drift":
            if self.queued is None:
                self.queued = _Run(trigger)
                return "queued"
            self.queued.joined.append(trigger)
            return "joined"
        self.running.joined.append(trigger)
        return "joined"

    def finish(self, now: float) -> Trigger | None:
        """The run in progress ended; the queued one, if any, starts now."""
        if self.running is not None:
            self._ended_kind = self.running.trigger.kind
        self.running, self.queued = self.queued, None
        self._ended_at = now
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
