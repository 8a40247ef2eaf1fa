"""A valid example record for any Avro schema, so every schema gets exercised without a hand-kept list."""

import copy
from datetime import UTC, datetime
from typing import Any

from tideline import catalog, serde
from tideline.schemas import Schema

PRIMITIVES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": -7,
    "long": 2**40,
    "float": 1.5,
    "double": -2.25,
    "bytes": b"\x00\xff tideline",
    "string": "tideline ✓",
}

# fastavro reads timestamp-millis back as an aware datetime; millisecond precision survives.
EXAMPLE_TIME = datetime(2026, 11, 24, 12, 30, 15, 123000, tzinfo=UTC)


def example(schema: Any, named: dict[str, Any] | None = None) -> Any:
    named = {} if named is None else named
    if isinstance(schema, str):
        return PRIMITIVES[schema] if schema in PRIMITIVES else example(named[schema], named)
    if isinstance(schema, list):  # a union: take the first non-null branch, the interesting one
        return example(next((b for b in schema if b != "null"), "null"), named)
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-millis":
        return EXAMPLE_TIME
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: example(f["type"], named) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][0]
    if kind == "fixed":
        named[schema["name"]] = schema
        return b"\x01" * schema["size"]
    if kind == "array":
        return [example(schema["items"], named)]
    if kind == "map":
        return {"key": example(schema["values"], named)}
    return example(kind, named)


ADDED = "added_in_a_newer_version"


def newer_schema(schema: Schema) -> Schema:
    """`schema` as a newer release has it: one more field, with a default (a change the
    compatibility check accepts), so a fingerprint no reader of today's schema knows."""
    parsed = copy.deepcopy(schema.parsed)
    parsed["fields"] = [
        *parsed["fields"],
        {"name": ADDED, "type": ["null", "string"], "default": None},
    ]
    return Schema.from_parsed(schema.name, parsed)


def newer_version(schema: Schema) -> bytes:
    """An example record of `schema` as a newer release would write it (`newer_schema`)."""
    record = example(schema.parsed) | {ADDED: "from the future"}
    return serde.encode(newer_schema(schema), record)


def oversized(topic: str, schema: Schema) -> list[bytes]:
    """A stranger's bytes as large as `topic` lets a service write, one of them behind the
    header of `schema`: a reader skips them as it skips small ones."""
    size = catalog.topic(topic).value_bytes
    return [b"\x00" * size, schema.header + b"\xff" * (size - len(schema.header))]
