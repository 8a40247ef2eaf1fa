"""Records of another version of a schema, resolved through the writer schemas; what the
schemas topic refuses; which changes break. The topic itself: tests/integration/test_schema_store.py."""

import copy
import json

import pytest
from tideline import compatibility, project, schema_store, schemas, serde
from tideline.errors import DecodeError
from tideline.schemas import Schema

from ..examples import ADDED, example, newer_schema
from ..projects import EXAMPLES

SCHEMAS = [schemas.load(name) for name in ("tideline.ModelUpdated", "tideline.DriftEvent")]
CARDS_EVENT = project.load(EXAMPLES[0]).event_schema


def _changed(schema: Schema, **field_types: object) -> Schema:
    parsed = copy.deepcopy(schemas.standalone(schema))
    for f in parsed["fields"]:
        if f["name"] in field_types:
            f["type"] = field_types[f["name"]]
    return Schema.from_parsed(schema.name, parsed)


@pytest.mark.parametrize("schema", [*SCHEMAS, CARDS_EVENT], ids=lambda s: s.name)
def test_either_version_reads_the_other_once_the_writer_schema_is_known(schema: Schema) -> None:
    newer = newer_schema(schema)
    record = example(schema.parsed)
    writers = serde.Writers()
    old_reader, new_reader = serde.Decoder([schema], writers), serde.Decoder([newer], writers)
    from_newer = serde.encode(newer, record | {ADDED: "new"})
    from_older = serde.encode(schema, record)
    for reader, data in ((old_reader, from_newer), (new_reader, from_older)):
        with pytest.raises(DecodeError, match="unknown_fingerprint"):
            reader.decode(data)
    writers.add(newer)
    writers.add(schema)
    assert old_reader.decode_as(schema, from_newer) == record  # the new field left out
    assert new_reader.decode_as(newer, from_older) == record | {ADDED: None}  # at its default


def test_a_writer_schema_of_another_record_is_not_used() -> None:
    writers = serde.Writers()
    other = SCHEMAS[1]
    writers.add(other)
    data = serde.encode(other, example(other.parsed))
    with pytest.raises(DecodeError, match="unknown_fingerprint"):
        serde.Decoder([SCHEMAS[0]], writers).decode(data)


def test_a_writer_schema_the_reader_cannot_resolve_is_incompatible() -> None:
    drift = SCHEMAS[1]
    name = next(f["name"] for f in drift.parsed["fields"] if f["type"] == "string")
    changed = _changed(drift, **{name: "boolean"})
    writers = serde.Writers()
    writers.add(changed)
    data = serde.encode(changed, example(changed.parsed))
    with pytest.raises(DecodeError, match="incompatible"):
        serde.Decoder([drift], writers).decode(data)


def _refusal(key: bytes | None, value: bytes | None) -> str:
    decoder = serde.Decoder([schema_store.TOPIC.schema()], serde.Writers())
    with pytest.raises(schema_store.RefusedError) as refused:
        schema_store.parse(key, value, decoder)
    return refused.value.reason


def _entry(name: str, text: str, key: bytes = b"") -> tuple[bytes, bytes]:
    value = {"name": name, "schema": text, "service": "stranger", "registered_at": 0}
    return key, serde.encode(schema_store.TOPIC.schema(), value)


def test_the_schemas_topic_takes_only_a_schema_under_its_own_fingerprint() -> None:
    good = SCHEMAS[0]
    key, value = schema_store.entry(good, "registry")
    decoder = serde.Decoder([schema_store.TOPIC.schema()], serde.Writers())
    assert schema_store.parse(key, value, decoder).fingerprint == good.fingerprint

    other = json.dumps(schemas.standalone(SCHEMAS[1]))
    nested = '{"type": "array", "items": ' * 5000 + '"long"' + "}" * 5000
    assert _refusal(key, b"\x00garbage") == "undecodable"
    assert _refusal(key, value[:-3]) == "undecodable"
    assert _refusal(*_entry(good.name, "{not json", key)) == "not_a_schema"
    assert _refusal(*_entry(good.name, nested, key)) == "not_a_schema"
    assert _refusal(*_entry(good.name, '"string"', key)) == "wrong_name"
    assert _refusal(*_entry(good.name, other, key)) == "wrong_name"
    # another schema under a known schema's fingerprint: no one re-maps a fingerprint
    assert _refusal(*_entry(SCHEMAS[1].name, other, key)) == "wrong_key"


def test_a_change_breaks_when_either_side_cannot_read_the_other() -> None:
    event = CARDS_EVENT
    optional = newer_schema(event)
    assert compatibility.breaking(optional, event) is None
    required = copy.deepcopy(schemas.standalone(event))
    required["fields"].append({"name": "device", "type": "string"})
    problem = compatibility.breaking(Schema.from_parsed(event.name, required), event)
    assert problem is not None
    assert "cannot read the records written with" in problem
    assert "device" in problem
    # a field dropped that old readers need (no default): they cannot read the new records
    dropped = copy.deepcopy(schemas.standalone(event))
    dropped["fields"] = [f for f in dropped["fields"] if f["name"] != "entity_id"]
    problem = compatibility.breaking(Schema.from_parsed(event.name, dropped), event)
    assert problem is not None
    assert "readers still on" in problem


@pytest.mark.parametrize("old", schemas.previous(), ids=lambda s: s.name)
def test_records_of_releases_before_the_store_resolve_to_today_s(old: Schema) -> None:
    today = schemas.load(old.name)
    assert old.fingerprint != today.fingerprint
    assert compatibility.breaking(today, old) is None
    assert old.fingerprint in {s.fingerprint for s in schema_store.own_schemas()}
    writers = serde.Writers()
    for schema in schema_store.own_schemas():
        writers.add(schema)
    record = example(old.parsed)
    decoded = serde.Decoder([today], writers).decode_as(today, serde.encode(old, record))
    assert {k: decoded[k] for k in record} == record
