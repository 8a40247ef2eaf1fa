"""Valid synthetic events for any project: for tests, benchmarks and trying a project out.

Values follow the project's declared types and rules (allowed categories, ranges),
so ingest accepts them; a seed makes a stream repeatable.
"""

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from tideline.project import Project
from tideline.rules import AllowedRule, RangeRule


class Generator:
    def __init__(self, project: Project, entities: int, seed: int = 0) -> None:
        self.project = project
        self.random = random.Random(seed)
        self.entities = [f"{project.event.entity_key}-{i}" for i in range(entities)]
        self._allowed = {
            r.field: sorted(r.values, key=str) for r in project.rules if isinstance(r, AllowedRule)
        }
        self._ranges = {
            r.field: (r.min if r.min is not None else 0.0, r.max if r.max is not None else 100.0)
            for r in project.rules
            if isinstance(r, RangeRule)
        }
        self._count = 0

    def _value(self, name: str, kind: str) -> Any:
        if name in self._allowed:
            return self.random.choice(self._allowed[name])
        if name in self.project.event.optional and self.random.random() < 0.1:
            return None
        low, high = self._ranges.get(name, (0.0, 100.0))
        if kind in ("int", "long"):
            return self.random.randint(int(low), int(high))
        if kind in ("float", "double"):
            return round(self.random.uniform(low, high), 2)
        if kind == "boolean":
            return self.random.random() < 0.5
        return f"{name}-{self.random.randint(0, 20)}"

    def event(self, at: datetime, entity: str | None = None) -> dict[str, Any]:
        """One event record (the Event envelope) at `at`."""
        self._count += 1
        spec = self.project.event
        entity = entity if entity is not None else self.random.choice(self.entities)
        payload = {name: self._value(name, kind) for name, kind in spec.fields.items()}
        payload[spec.entity_key] = entity
        return {
            "event_id": f"e-{self.random.getrandbits(64):016x}-{self._count}",
            "entity_id": entity,
            "event_time": at,
            "payload": payload,
        }

    def stream(
        self, start: datetime, count: int, spacing: timedelta, jitter: timedelta = timedelta(0)
    ) -> Iterator[dict[str, Any]]:
        """`count` events `spacing` apart, each moved by up to ±`jitter` (out of order)."""
        for i in range(count):
            shift = self.random.uniform(-1, 1) * jitter if jitter else timedelta(0)
            at = start + i * spacing + shift
            yield self.event(at.replace(microsecond=at.microsecond // 1000 * 1000))
