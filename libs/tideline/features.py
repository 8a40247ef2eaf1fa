"""Feature definitions, declared once: the stream job, training sets and request-time
serving all compute features from these declarations, so they cannot disagree.

A definition set's `version` is a hash of its declaration; it travels with every
feature vector, and a model trained on one version is refused on another.
"""

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from tideline.durations import Duration

NUMERIC = {"int", "long", "float", "double"}

# One held event in a window: (event time ms, offset, value of each field aggregations read).
Row = tuple[Any, ...]
TIME, OFFSET = 0, 1


@dataclass(frozen=True)
class TransformKind:
    """How a feature of the event itself is typed and computed."""

    output: str | None  # the value's Avro type; None: the field's own type
    compute: Callable[[int, Any], Any]  # (event time ms, the field's value) -> the feature
    reads_field: bool = True  # False: it reads the event time alone
    numeric: bool = False  # its field must be a number


@dataclass(frozen=True)
class AggregationKind:
    """How a windowed aggregate is typed and computed."""

    output: str | None  # the value's Avro type; None: the field's own type
    # the value over the window's rows (arrival order), given the column of its field
    reduce: Callable[[Sequence[Row], int], Any]
    reads_field: bool = True  # False: it counts rows (count)
    numeric: bool = False  # its field must be a number

    def empty(self) -> Any:
        """Its value over no rows: what an entity without events reads."""
        return self.reduce((), 0)


def _present(rows: Sequence[Row], column: int) -> list[Any]:
    return [row[column] for row in rows if row[column] is not None]


def _mean(rows: Sequence[Row], column: int) -> float | None:
    values = _present(rows, column)
    return float(sum(values)) / len(values) if values else None


def _extreme(pick: Callable[[list[Any]], Any]) -> Callable[[Sequence[Row], int], Any]:
    def reduce(rows: Sequence[Row], column: int) -> float | None:
        values = _present(rows, column)
        return float(pick(values)) if values else None

    return reduce


def _last(rows: Sequence[Row], column: int) -> Any:
    # the newest event time wins; among equal times, the later arrival
    present = [row for row in rows if row[column] is not None]
    return max(present, key=lambda row: (row[TIME], row[OFFSET]))[column] if present else None


def _log1p(t: int, value: Any) -> float | None:
    # log1p is undefined at and below -1: such a value has no feature, not an error
    return None if value is None or value <= -1 else math.log1p(value)


def _moment(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


# Every kind of feature, by the name a project declares. A new kind is one entry here;
# the stream job, training sets, the online store's defaults and the schemas follow.
TRANSFORMS: dict[str, TransformKind] = {
    "identity": TransformKind(None, lambda t, value: value),
    "log1p": TransformKind("double", _log1p, numeric=True),
    "hour_of_day": TransformKind("int", lambda t, _: _moment(t).hour, reads_field=False),
    "day_of_week": TransformKind("int", lambda t, _: _moment(t).weekday(), reads_field=False),
}
AGGREGATIONS: dict[str, AggregationKind] = {
    "count": AggregationKind("long", lambda rows, _: len(rows), reads_field=False),
    "sum": AggregationKind(
        "double", lambda rows, column: float(sum(_present(rows, column))), numeric=True
    ),
    "mean": AggregationKind("double", _mean, numeric=True),
    "min": AggregationKind("double", _extreme(min), numeric=True),
    "max": AggregationKind("double", _extreme(max), numeric=True),
    "last": AggregationKind(None, _last),
    "distinct": AggregationKind("long", lambda rows, column: len(set(_present(rows, column)))),
}


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Feature(_Declared):
    """A named feature of one kind of its table, reading one event field (or none)."""

    name: str
    kind: str  # a key of the class's table
    field: str | None = None

    TABLE: ClassVar[Mapping[str, TransformKind | AggregationKind]]

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str) -> str:
        if kind not in cls.TABLE:
            raise ValueError(
                f"unknown {cls.__name__.lower()} {kind!r}; one of {', '.join(cls.TABLE)}"
            )
        return kind

    def avro_type(self, event_fields: Mapping[str, str]) -> str:
        return self.TABLE[self.kind].output or event_fields[self.field or ""]


class Transform(_Feature):
    """A feature of the event itself: log1p(amount), the hour of its event time..."""

    TABLE = TRANSFORMS

    @property
    def spec(self) -> TransformKind:
        return TRANSFORMS[self.kind]


class Window(_Declared):
    """Event-time window: tumbling (fixed buckets), hopping (overlapping buckets every
    `step`), or sliding (the `size` before each event)."""

    kind: Literal["tumbling", "hopping", "sliding"]
    size: Duration
    step: Duration | None = None

    @model_validator(mode="after")
    def _step(self) -> "Window":
        if (self.kind == "hopping") != (self.step is not None):
            raise ValueError("a hopping window needs a step, and only a hopping window has one")
        if self.step is not None and not timedelta(0) < self.step <= self.size:
            raise ValueError("a hopping window's step must be positive and at most its size")
        if self.size <= timedelta(0):
            raise ValueError("a window's size must be positive")
        return self


class Aggregation(_Feature):
    """A windowed aggregate of one field per entity (count reads none), e.g. the mean
    amount over 1 hour."""

    TABLE = AGGREGATIONS
    window: Window

    @property
    def spec(self) -> AggregationKind:
        return AGGREGATIONS[self.kind]


class FeatureSet(_Declared):
    transforms: tuple[Transform, ...] = ()
    aggregations: tuple[Aggregation, ...] = ()
    allowed_lateness: Duration = timedelta(0)
    ttl: Duration = timedelta(days=1)

    @property
    def all(self) -> list[Transform | Aggregation]:
        """Every feature, in the order of the feature vector."""
        return [*self.transforms, *self.aggregations]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.all]

    @property
    def version(self) -> str:
        declared = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(declared.encode()).hexdigest()[:16]

    def avro_fields(self, event_fields: Mapping[str, str]) -> list[dict[str, Any]]:
        # Every value is nullable: an empty window has no mean, an event may lack a field.
        return [
            {"name": f.name, "type": ["null", f.avro_type(event_fields)], "default": None}
            for f in self.all
        ]

    def check_fields(self, event_fields: Mapping[str, str]) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError("feature names must be unique")
        for feature in self.all:
            spec = feature.spec
            if spec.reads_field and feature.field not in event_fields:
                raise ValueError(f"feature {feature.name}: no event field {feature.field!r}")
            if spec.numeric and event_fields[feature.field or ""] not in NUMERIC:
                raise ValueError(f"feature {feature.name}: {feature.kind} needs a numeric field")
