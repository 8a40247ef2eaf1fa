"""Declarative data-quality rules: data in the project file, not code paths in a service.

Types and required fields are the event schema's job; these rules add what a schema
cannot say. A rule returns a violation message, or None when the event passes.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tideline.durations import Duration


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name_: str | None = Field(default=None, alias="name")

    @property
    def name(self) -> str:
        """As declared, or kind:field (e.g. range:amount)."""
        if self.name_:
            return self.name_
        kind: str = getattr(self, "kind")  # noqa: B009 - each subclass declares it
        field = getattr(self, "field", None)
        return f"{kind}:{field}" if field else kind


class RangeRule(_Rule):
    kind: Literal["range"] = "range"
    field: str
    min: float | None = None
    max: float | None = None

    def check(self, payload: Mapping[str, Any], event_time: datetime, now: datetime) -> str | None:
        value = payload.get(self.field)
        if value is None:
            return None
        if self.min is not None and value < self.min:
            return f"{self.field}={value} is below {self.min}"
        if self.max is not None and value > self.max:
            return f"{self.field}={value} is above {self.max}"
        return None


class AllowedRule(_Rule):
    kind: Literal["allowed"] = "allowed"
    field: str
    values: frozenset[str | int]

    def check(self, payload: Mapping[str, Any], event_time: datetime, now: datetime) -> str | None:
        value = payload.get(self.field)
        if value is None or value in self.values:
            return None
        return f"{self.field}={value!r} is not one of {sorted(map(str, self.values))}"


class NotEmptyRule(_Rule):
    kind: Literal["not_empty"] = "not_empty"
    field: str

    def check(self, payload: Mapping[str, Any], event_time: datetime, now: datetime) -> str | None:
        value = payload.get(self.field)
        return f"{self.field} is empty" if isinstance(value, str) and not value.strip() else None


class EventTimeRule(_Rule):
    kind: Literal["event_time"] = "event_time"
    max_future: Duration = timedelta(minutes=5)
    max_past: Duration = timedelta(days=30)

    def check(self, payload: Mapping[str, Any], event_time: datetime, now: datetime) -> str | None:
        if event_time > now + self.max_future:
            return (
                f"event_time {event_time.isoformat()} is more than {self.max_future} in the future"
            )
        if event_time < now - self.max_past:
            return f"event_time {event_time.isoformat()} is more than {self.max_past} in the past"
        return None


Rule = Annotated[
    RangeRule | AllowedRule | NotEmptyRule | EventTimeRule, Field(discriminator="kind")
]


def first_violation(
    rules: Iterable[Rule], payload: Mapping[str, Any], event_time: datetime, now: datetime
) -> tuple[str, str] | None:
    """(rule name, message) of the first rule the event breaks, or None."""
    for rule in rules:
        message = rule.check(payload, event_time, now)
        if message is not None:
            return rule.name, message
    return None
