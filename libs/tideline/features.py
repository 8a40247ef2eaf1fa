"""Feature definitions, declared once: the stream job, training sets and request-time
serving all compute features from these declarations, so they cannot disagree.

A definition set's `version` is a hash of its declaration; it travels with every
feature vector, and a model trained on one version is refused on another.
"""

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from tideline.durations import Duration

NUMERIC = {"int", "long", "float", "double"}


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transform(_Declared):
    """A feature of the event itself: log1p(amount), the hour of its event time..."""

    name: str
    kind: Literal["identity", "log1p", "hour_of_day", "day_of_week"]
    field: str | None = None  # hour_of_day and day_of_week read the event time

    def avro_type(self, event_fields: Mapping[str, str]) -> str:
        if self.kind in ("hour_of_day", "day_of_week"):
            return "int"
        if self.kind == "log1p":
            return "double"
        return event_fields[self.field or ""]


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


class Aggregation(_Declared):
    """A windowed aggregate of one field per entity, e.g. the mean amount over 1 hour."""

    name: str
    kind: Literal["count", "sum", "mean", "min", "max", "last", "distinct"]
    field: str | None = None  # count needs none
    window: Window

    def avro_type(self, event_fields: Mapping[str, str]) -> str:
        if self.kind in ("count", "distinct"):
            return "long"
        if self.kind == "last":
            return event_fields[self.field or ""]
        return "double"


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
            needs_field = not (
                isinstance(feature, Transform) and feature.kind in ("hour_of_day", "day_of_week")
            ) and not (isinstance(feature, Aggregation) and feature.kind == "count")
            if needs_field and feature.field not in event_fields:
                raise ValueError(f"feature {feature.name}: no event field {feature.field!r}")
            numeric_only = feature.kind in ("log1p", "sum", "mean", "min", "max")
            if numeric_only and event_fields[feature.field or ""] not in NUMERIC:
                raise ValueError(f"feature {feature.name}: {feature.kind} needs a numeric field")
