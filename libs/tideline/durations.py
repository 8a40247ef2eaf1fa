"""Durations written the way people write them in a project file: 30s, 10m, 1h, 7d."""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _PATTERN.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration like 30s, 10m, 1h or 7d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def render(value: timedelta) -> str:
    """Seconds, in a form `parse` reads back (so never an exponent)."""
    seconds = value.total_seconds()
    return f"{seconds:.0f}s" if seconds.is_integer() else f"{seconds!r}s"


Duration = Annotated[timedelta, BeforeValidator(parse), PlainSerializer(render, return_type=str)]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def millis(value: timedelta) -> int:
    """Whole milliseconds, computed exactly (no float rounding on the way)."""
    return value // timedelta(milliseconds=1)


def epoch_millis(moment: datetime) -> int:
    return millis(moment - EPOCH)
