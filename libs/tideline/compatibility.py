"""Avro schema compatibility, decided by Apache Avro's own checker (the `avro` package),
the rules Schema Registry applies, rather than a reimplementation of them.

Backward: a reader with the new schema reads every record written with the old one.
Forward: a reader still on the old schema reads every record written with the new one.
"""

import json

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from tideline import schemas


def _json(schema: schemas.Schema | str) -> str:
    return schema if isinstance(schema, str) else json.dumps(schemas.standalone(schema))


def incompatibility(reader: schemas.Schema | str, writer: schemas.Schema | str) -> str | None:
    """None if `reader` reads the records `writer` wrote; else what breaks, and where."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro is untyped
    try:
        result = checker.get_compatibility(
            avro.schema.parse(_json(reader)), avro.schema.parse(_json(writer))
        )
    except avro.errors.AvroException as exc:
        return f"not an Avro schema: {exc}"
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = ", ".join(i.name for i in result.incompatibilities)
    return f"{kinds}: {'; '.join(sorted(result.messages))} at {', '.join(sorted(result.locations))}"


def breaking(new: schemas.Schema, old: schemas.Schema) -> str | None:
    """None if each of the two reads the other's records (full compatibility); else what
    breaks, and for whom."""
    if problem := incompatibility(new, old):
        return f"it cannot read the records written with {old.fingerprint.hex()}: {problem}"
    if problem := incompatibility(old, new):
        return f"readers still on {old.fingerprint.hex()} cannot read its records: {problem}"
    return None
