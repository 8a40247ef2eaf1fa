"""Raw bytes to a canonical record: our Avro single-object encoding, or a UTF-8 JSON object.

JSON is for the convenience of business systems: a flat object with `event_id`,
`event_time` (epoch milliseconds or ISO 8601 with a zone) and the project's fields.
"""

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from tideline import serde
from tideline.dlq import RejectionError
from tideline.errors import DecodeError
from tideline.schemas import SINGLE_OBJECT_MARKER

Record = dict[str, Any]


def decode(value: bytes | None, decoder: serde.Decoder) -> Record | dict[str, Any]:
    """The Avro record if `value` is ours; else the JSON object, still to be checked."""
    if not value:
        raise RejectionError("decode", "EmptyValue", "the record has no value")
    if value[:2] == SINGLE_OBJECT_MARKER:
        try:
            return decoder.decode(value)[1]
        except DecodeError as exc:
            raise RejectionError("decode", "DecodeError", str(exc)) from exc
    try:
        obj = orjson.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise RejectionError(
            "decode",
            type(exc).__name__,
            "neither Avro single-object encoding nor a UTF-8 JSON object",
        ) from exc
    if not isinstance(obj, dict):
        raise RejectionError("decode", "NotAnObject", f"JSON {type(obj).__name__}, not an object")
    return obj


def timestamp(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
            raise RejectionError("schema", "NaiveTime", f"{field} {value!r} has no time zone")
    raise RejectionError(
        "schema", "BadTime", f"{field} must be epoch ms or ISO 8601, not {value!r}"
    )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(bits: int) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return (
            isinstance(value, int) and not isinstance(value, bool) and -(2**bits) <= value < 2**bits
        )

    return check


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "boolean": _is_bool,
    "int": _is_integer(31),
    "long": _is_integer(63),
    "float": _is_number,
    "double": _is_number,
    "string": _is_str,
}


class Fields:
    """Type checks for one record type's JSON fields, worked out once, not per record."""

    def __init__(self, declared: Mapping[str, str], optional: frozenset[str]) -> None:
        self.declared = frozenset(declared)
        self._checks = [
            (name, _CHECKS[t], name in optional, t in ("float", "double"), t)
            for name, t in declared.items()
        ]

    def __call__(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The declared fields of a JSON object, type-checked; unknown or missing ones refused."""
        if not self.declared.issuperset(obj):
            unknown = sorted(set(obj) - self.declared)
            raise RejectionError("schema", "UnknownField", f"fields not in the schema: {unknown}")
        out: dict[str, Any] = {}
        for name, fits, optional, real, avro_type in self._checks:
            value = obj.get(name)
            if value is None:
                if not optional:
                    raise RejectionError(
                        "schema", "MissingField", f"required field {name} is missing"
                    )
                out[name] = None
            elif not fits(value):
                raise RejectionError(
                    "schema", "WrongType", f"{name}={value!r} is not a valid {avro_type}"
                )
            else:
                out[name] = float(value) if real else value
        return out
