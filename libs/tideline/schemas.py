"""The Avro schemas in `schemas/`: loading, fingerprints, and payloads derived from a project.

Files are named by the record's full name (`tideline.Event.avsc`), so a schema can
name another record (`"tideline.Header"`) and fastavro resolves it from the folder.
"""

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro.schema

from tideline.errors import SchemaError

SINGLE_OBJECT_MARKER = b"\xc3\x01"


def schema_dir() -> Path:
    """`schemas/` of the source tree, or its copy inside an installed wheel."""
    packaged = Path(__file__).parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True)
class Schema:
    """A parsed schema with what single-object encoding needs."""

    name: str
    parsed: Any
    canonical: str
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, little-endian, as on the wire

    @property
    def header(self) -> bytes:
        return SINGLE_OBJECT_MARKER + self.fingerprint

    @classmethod
    def from_parsed(cls, name: str, parsed: Any) -> "Schema":
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
        return cls(name=name, parsed=parsed, canonical=canonical, fingerprint=fingerprint)


def standalone(schema: Schema) -> Any:
    """`schema` as one self-contained `.avsc`: every type it names is defined where it is
    first used (as it was loaded), fastavro's own keys left out, so any Avro library
    parses the file alone, with no other file and no order to follow."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if not k.startswith("__")}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return clean(schema.parsed)


def names() -> list[str]:
    """Full names of every record that has a file in `schemas/`."""
    return sorted(p.name.removesuffix(".avsc") for p in schema_dir().glob("*.avsc"))


@cache
def load(name: str) -> Schema:
    """The schema of record `name` (e.g. `tideline.DeadLetter`), references resolved."""
    path = schema_dir() / f"{name}.avsc"
    if not path.is_file():
        raise SchemaError(f"no schema file {path.name} in {schema_dir()}")
    try:
        # Parsed with fastavro's hint, which spares it re-parsing the schema on every
        # encode and decode: without it both cost twice as much.
        parsed = fastavro.schema.load_schema(str(path))
    except (ValueError, fastavro.schema.SchemaParseException, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path.name}: {exc}") from exc
    return Schema.from_parsed(name, parsed)


def previous() -> list[Schema]:
    """The versions of our records that releases before the schema store wrote
    (`schemas/previous/<name>.<n>.avsc`, each self-contained): no store registered them,
    so every reader is given them to resolve those records, kept on the compacted
    topics, to today's."""
    found = []
    for path in sorted((schema_dir() / "previous").glob("*.avsc")):
        name = path.name.removesuffix(".avsc").rsplit(".", 1)[0]
        parsed = fastavro.schema.parse_schema(json.loads(path.read_text()), named_schemas={})
        found.append(Schema.from_parsed(name, parsed))
    return found


def derive(envelope: str, fields: list[dict[str, Any]], namespace: str) -> Schema:
    """The envelope `envelope` with its placeholder record filled with a project's `fields`.

    Each envelope (Event, Label, FeatureVector) has exactly one field whose type is an
    empty record; a project's schema is that envelope with the record's fields set and
    its name moved into the project's namespace, so two projects never share a
    fingerprint while every service reads the envelope fields the same way.
    """
    raw = json.loads((schema_dir() / f"{envelope}.avsc").read_text())
    derived = copy.deepcopy(raw)
    holders = [
        f
        for f in derived["fields"]
        if isinstance(f["type"], dict) and f["type"].get("fields") == []
    ]
    if len(holders) != 1:
        raise SchemaError(f"{envelope} has no single empty record to fill")
    holder = holders[0]["type"]
    holder["fields"] = fields
    holder["namespace"] = namespace
    derived["namespace"] = namespace
    full_name = f"{namespace}.{raw['name']}"
    try:
        parsed = fastavro.schema.parse_schema(derived)
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"derived {full_name}: {exc}") from exc
    return Schema.from_parsed(full_name, parsed)
