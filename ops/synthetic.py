"""Valid synthetic events for any project: for tests, benchmarks and trying a project out.

Values follow the project's declared types and rules (allowed categories, ranges),
so ingest accepts them; a seed makes a stream repeatable.
"""

import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from tideline.durations import epoch_millis
from tideline.project import Project
from tideline.rules import AllowedRule, RangeRule
from tideline.windows import Event, replay


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


class Concept:
    """A hidden rule from events to labels, for any project: what a model has to learn.

    A seeded random linear score over the fields the features read directly (identity,
    log1p and `last` features), scaled by the fields' declared ranges, plus a weight per
    category. Classification labels are the score above zero (about half positive);
    regression labels the score itself. `noise` flips (or perturbs) that share of labels.
    Another seed is another concept: swapping it mid-stream is an abrupt concept drift.
    """

    def __init__(self, project: Project, seed: int, noise: float = 0.05) -> None:
        self.project, self.noise = project, noise
        self.random = random.Random(seed)
        direct = {
            f.field
            for f in project.features.all
            if f.field is not None and f.kind in ("identity", "log1p", "last")
        }
        ranges = {r.field: r for r in project.rules if isinstance(r, RangeRule)}
        self._numeric: dict[str, tuple[float, float, float]] = {}
        self._categorical: dict[str, dict[Any, float]] = {}
        for rule in project.rules:
            if isinstance(rule, AllowedRule) and rule.field in direct:
                self._categorical[rule.field] = {
                    v: self.random.uniform(-1, 1) for v in sorted(rule.values, key=str)
                }
        for name in sorted(direct - set(self._categorical)):
            if project.event.fields[name] in ("int", "long", "float", "double"):
                bound = ranges.get(name)
                low = bound.min if bound is not None and bound.min is not None else 0.0
                high = bound.max if bound is not None and bound.max is not None else 100.0
                self._numeric[name] = (low, high, self.random.uniform(-2, 2))

    def score(self, payload: dict[str, Any]) -> float:
        total = 0.0
        for name, (low, high, weight) in self._numeric.items():
            value = payload.get(name)
            if value is not None:
                total += weight * ((value - low) / (high - low) - 0.5)
        for name, weights in self._categorical.items():
            total += weights.get(payload.get(name), 0.0)
        return total - sum(sum(w.values()) / len(w) for w in self._categorical.values())

    def label(self, event: dict[str, Any]) -> Any:
        """The label of one event record (the Event envelope)."""
        score = self.score(event["payload"])
        if self.project.label.task == "regression":
            return score + self.random.gauss(0, self.noise)
        return (score > 0) != (self.random.random() < self.noise)


def labelled_vectors(
    project: Project, events: Iterable[dict[str, Any]], concept: Concept
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each event's feature vector record (as the feature store computes it, in the given
    order) and its label record. Late events have no vector and are left out."""
    records = list(events)
    by_id = {e["event_id"]: e for e in records}
    stream = (
        Event(e["entity_id"], epoch_millis(e["event_time"]), i, e["payload"], e["event_id"])
        for i, e in enumerate(records)
    )
    for event, values in replay(project.features, stream):
        if values is None:
            continue
        record = by_id[event.event_id]
        yield (
            {
                "event_id": event.event_id,
                "entity_id": event.entity,
                "event_time": record["event_time"],
                "feature_version": project.features.version,
                "computed_at": record["event_time"],
                "values": values,
            },
            {
                "event_id": event.event_id,
                "label_time": record["event_time"],
                "payload": {project.label.field: concept.label(record)},
            },
        )
