import json
from typing import Any

import avro.schema
import pytest
from tideline import schemas, serde
from tideline.errors import DecodeError, EncodeError, SchemaError
from tideline.schemas import Schema

from ..examples import example

ALL = schemas.names()


@pytest.fixture(scope="module")
def decoder() -> serde.Decoder:
    return serde.Decoder(schemas.load(name) for name in ALL)


def test_every_schema_file_is_loaded() -> None:
    assert len(ALL) >= 15
    assert "tideline.DeadLetter" in ALL


@pytest.mark.parametrize("name", ALL)
def test_round_trip_of_every_schema(name: str, decoder: serde.Decoder) -> None:
    schema = schemas.load(name)
    record = example(schema.parsed)
    data = serde.encode(schema, record)
    found, decoded = decoder.decode(data)
    assert found is schema
    assert decoded == record


@pytest.mark.parametrize("name", ALL)
def test_every_cut_short_record_is_truncated(name: str, decoder: serde.Decoder) -> None:
    # wherever the bytes stop: in the header, mid-number, mid-string, between fields
    data = serde.encode(schemas.load(name), example(schemas.load(name).parsed))
    reasons = set()
    for cut in range(1, len(data)):
        with pytest.raises(DecodeError) as refused:
            decoder.decode(data[:cut])
        reasons.add(refused.value.reason)
    assert reasons == {"truncated"}


@pytest.mark.parametrize("name", ALL)
def test_header_is_marker_and_little_endian_crc64_of_canonical_form(name: str) -> None:
    schema = schemas.load(name)
    data = serde.encode(schema, example(schema.parsed))
    assert data[:2] == b"\xc3\x01"
    # Apache's own Python implementation computes the same fingerprint.
    assert data[2:10] == avro.schema.parse(schema.canonical).fingerprint("CRC-64-AVRO")


def _valid() -> tuple[Schema, bytes]:
    schema = schemas.load("tideline.DeadLetter")
    return schema, serde.encode(schema, example(schema.parsed))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"", "not_single_object"),
        (lambda d: b"\xc3", "truncated"),
        (lambda d: d[:6], "truncated"),
        (lambda d: b'{"event_id": "e1", "amount": 3}', "not_single_object"),
        (lambda d: b"\x00\x01" + d[2:], "not_single_object"),
        (lambda d: bytes(range(200)), "not_single_object"),
        (lambda d: d[:2] + b"\x00" * 8 + d[10:], "unknown_fingerprint"),
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:10], "truncated"),
        (lambda d: d + b"\x00junk", "malformed"),
    ],
    ids=[
        "empty",
        "marker-byte-only",
        "header-cut",
        "json",
        "wrong-marker",
        "garbage",
        "unknown-fingerprint",
        "payload-cut",
        "header-only",
        "trailing-bytes",
    ],
)
def test_malformed_input_raises_decode_error_saying_which(mutate, reason, decoder) -> None:  # type: ignore[no-untyped-def]
    _, data = _valid()
    with pytest.raises(DecodeError) as info:
        decoder.decode(mutate(data))
    assert info.value.reason == reason
    assert str(info.value).startswith(reason)


def test_decode_as_refuses_another_schema(decoder: serde.Decoder) -> None:
    _, data = _valid()
    with pytest.raises(DecodeError) as info:
        decoder.decode_as(schemas.load("tideline.Prediction"), data)
    assert info.value.reason == "unknown_fingerprint"


def test_encode_refuses_a_record_that_does_not_fit() -> None:
    schema = schemas.load("tideline.Trigger")
    with pytest.raises(EncodeError, match=r"tideline\.Trigger"):
        serde.encode(schema, {"kind": "drift"})  # id missing
    with pytest.raises(EncodeError):
        serde.encode(schema, {"kind": "drift", "id": 5})


def test_derived_event_schema_carries_project_fields() -> None:
    fields: list[dict[str, Any]] = [
        {"name": "card_id", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "merchant", "type": ["null", "string"], "default": None},
    ]
    derived = schemas.derive("tideline.Event", fields, namespace="cards")
    assert derived.name == "cards.Event"
    base = schemas.load("tideline.Event")
    assert derived.fingerprint != base.fingerprint
    other = schemas.derive("tideline.Event", fields, namespace="sensors")
    assert other.fingerprint != derived.fingerprint
    record = example(derived.parsed)
    assert set(record["payload"]) == {"card_id", "amount", "merchant"}
    found, decoded = serde.Decoder([derived, base]).decode(serde.encode(derived, record))
    assert found is derived
    assert decoded == record


def test_derive_rejects_invalid_fields() -> None:
    with pytest.raises(SchemaError):
        schemas.derive("tideline.Event", [{"name": "x", "type": "no-such-type"}], "cards")


def test_missing_schema_is_a_clear_error() -> None:
    with pytest.raises(SchemaError, match=r"tideline\.Nope\.avsc"):
        schemas.load("tideline.Nope")


def test_schema_files_are_valid_json_with_matching_names() -> None:
    for path in schemas.schema_dir().glob("*.avsc"):
        raw = json.loads(path.read_text())
        assert f"{raw['namespace']}.{raw['name']}" == path.name.removesuffix(".avsc")
