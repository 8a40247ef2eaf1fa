"""Raw bytes to a canonical record: our Avro single-object encoding, or a UTF-8 JSON object.

JSON is for the convenience of business systems: a flat object with `event_id`,
`event_time` (epoch milliseconds or ISO 8601 with a zone) and the project's fields.
"""

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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
        obj = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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


def _fits(value: Any, avro_type: str) -> bool:
    if avro_type == "boolean":
        return isinstance(value, bool)
    if avro_type in ("int", "long"):
        bits = 31 if avro_type == "int" else 63
        return (
            isinstance(value, int) and not isinstance(value, bool) and -(2**bits) <= value < 2**bits
        )
    if avro_type in ("float", "double"):
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, str)


def fields(
    obj: Mapping[str, Any], declared: Mapping[str, str], optional: frozenset[str]
) -> dict[str, Any]:
    """The declared fields of a JSON object, type-checked; unknown or missing ones refused."""
    unknown = set(obj) - set(declared)
    if unknown:
        raise RejectionError(
            "schema", "UnknownField", f"fields not in the schema: {sorted(unknown)}"
        )
    out: dict[str, Any] = {}
    for name, avro_type in declared.items():
        value = obj.get(name)
        if value is None:
            if name not in optional:
                raise RejectionError("schema", "MissingField", f"required field {name} is missing")
            out[name] = None
        elif not _fits(value, avro_type):
            raise RejectionError(
                "schema", "WrongType", f"{name}={value!r} is not a valid {avro_type}"
            )
        else:
            out[name] = float(value) if avro_type in ("float", "double") else value
    return out
