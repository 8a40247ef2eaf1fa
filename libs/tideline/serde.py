"""Avro single-object encoding on fastavro: marker, fingerprint, payload.

Any Avro implementation decodes these bytes from the `.avsc` files alone
(Java's BinaryMessageDecoder, for one); no registry server is involved.
"""

from collections.abc import Iterable
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from tideline.errors import DecodeError, EncodeError
from tideline.schemas import SINGLE_OBJECT_MARKER, Schema

HEADER_SIZE = 10

Record = dict[str, Any]


def encode(schema: Schema, record: Record) -> bytes:
    buffer = BytesIO()
    buffer.write(schema.header)
    try:
        schemaless_writer(buffer, schema.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise EncodeError(f"{schema.name}: {type(exc).__name__}: {exc}") from exc
    return buffer.getvalue()


class Decoder:
    """Decodes single-object records written with any of the schemas it knows."""

    def __init__(self, schemas: Iterable[Schema]) -> None:
        self._by_fingerprint = {s.fingerprint: s for s in schemas}

    def schema_of(self, data: bytes) -> Schema:
        if len(data) < HEADER_SIZE:
            if data and data[:2] == SINGLE_OBJECT_MARKER[: len(data)]:
                raise DecodeError("truncated", f"{len(data)} bytes, a header needs {HEADER_SIZE}")
            raise DecodeError("not_single_object", f"{len(data)} bytes without the Avro marker")
        if data[:2] != SINGLE_OBJECT_MARKER:
            raise DecodeError("not_single_object", f"starts with {data[:2].hex()}, not c301")
        schema = self._by_fingerprint.get(data[2:HEADER_SIZE])
        if schema is None:
            raise DecodeError("unknown_fingerprint", f"no known schema has {data[2:10].hex()}")
        return schema

    def decode(self, data: bytes) -> tuple[Schema, Record]:
        schema = self.schema_of(data)
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(buffer, schema.parsed, None)
        except EOFError as exc:
            raise DecodeError("truncated", f"{schema.name} payload ends early") from exc
        except (ValueError, TypeError, IndexError, UnicodeDecodeError, OverflowError) as exc:
            if buffer.tell() >= len(data):  # it ran out of bytes, mid-number or mid-string
                raise DecodeError("truncated", f"{schema.name} payload ends early") from exc
            raise DecodeError("malformed", f"{schema.name}: {type(exc).__name__}: {exc}") from exc
        if buffer.tell() != len(data):
            raise DecodeError(
                "malformed", f"{schema.name}: {len(data) - buffer.tell()} bytes after the record"
            )
        if not isinstance(record, dict):
            raise DecodeError("malformed", f"{schema.name}: not a record")
        return schema, record

    def decode_as(self, schema: Schema, data: bytes) -> Record:
        """Decode bytes that must carry `schema`; any other fingerprint is an error."""
        found, record = self.decode(data)
        if found.fingerprint != schema.fingerprint:
            raise DecodeError("unknown_fingerprint", f"expected {schema.name}, got {found.name}")
        return record
