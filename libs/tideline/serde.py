"""Avro single-object encoding on fastavro: marker, fingerprint, payload.

Any Avro implementation decodes these bytes with the writer's schema (Java's
BinaryMessageDecoder, for one). A decoder reads records written with its own schemas
directly, and records of another version of them (older or newer) by Avro's schema
resolution, from the writer's schema that the schema store (`schema_store`, the
`schemas` topic) put in `WRITERS`; no registry server is involved.
"""

from collections.abc import Iterable
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

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


class Writers:
    """The schemas records may have been written with, by fingerprint: this process's own
    and, once a schema store is open, every one registered on the `schemas` topic."""

    def __init__(self) -> None:
        self._by_fingerprint: dict[bytes, Schema] = {}

    def know(self, fingerprints: set[bytes]) -> bool:
        return fingerprints <= self._by_fingerprint.keys()

    def get(self, fingerprint: bytes) -> Schema | None:
        return self._by_fingerprint.get(fingerprint)

    def add(self, schema: Schema) -> None:
        self._by_fingerprint.setdefault(schema.fingerprint, schema)


# The process's writer schemas: every decoder consults it for a fingerprint of its own
# records' names that it does not read with.
WRITERS = Writers()


class Decoder:
    """Decodes single-object records written with any of the schemas it knows, or with
    another version of one of them that `writers` holds."""

    def __init__(self, schemas: Iterable[Schema], writers: Writers = WRITERS) -> None:
        self._own = {s.fingerprint: s for s in schemas}
        self._by_name = {s.name: s for s in self._own.values()}
        self._writers = writers
        self._resolved: dict[bytes, tuple[Schema, Schema]] = {}  # writer fp: (reader, writer)

    def _resolve(self, fingerprint: bytes) -> tuple[Schema, Schema]:
        """(reader, writer) for a fingerprint not of this decoder's own schemas."""
        if (pair := self._resolved.get(fingerprint)) is not None:
            return pair
        writer = self._writers.get(fingerprint)
        reader = self._by_name.get(writer.name) if writer is not None else None
        if writer is None or reader is None:
            raise DecodeError("unknown_fingerprint", f"no known schema has {fingerprint.hex()}")
        self._resolved[fingerprint] = reader, writer
        return reader, writer

    def schema_of(self, data: bytes) -> Schema:
        """The schema this decoder reads `data` with (its own, whichever version wrote it)."""
        return self._locate(data)[0]

    def _locate(self, data: bytes) -> tuple[Schema, Schema | None]:
        if len(data) < HEADER_SIZE:
            if data and data[:2] == SINGLE_OBJECT_MARKER[: len(data)]:
                raise DecodeError("truncated", f"{len(data)} bytes, a header needs {HEADER_SIZE}")
            raise DecodeError("not_single_object", f"{len(data)} bytes without the Avro marker")
        if data[:2] != SINGLE_OBJECT_MARKER:
            raise DecodeError("not_single_object", f"starts with {data[:2].hex()}, not c301")
        fingerprint = data[2:HEADER_SIZE]
        if (schema := self._own.get(fingerprint)) is not None:
            return schema, None
        return self._resolve(fingerprint)

    def decode(self, data: bytes) -> tuple[Schema, Record]:
        """(the schema read with, the record); a record of another version comes out as
        this decoder's schema has it (fields it lacks at their defaults, new ones left out)."""
        schema, writer = self._locate(data)
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            if writer is None:
                record = schemaless_reader(buffer, schema.parsed, None)
            else:
                record = schemaless_reader(buffer, writer.parsed, schema.parsed)
        except SchemaResolutionError as exc:
            raise DecodeError(
                "incompatible", f"{schema.name} from {writer and writer.fingerprint.hex()}: {exc}"
            ) from exc
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
        """Decode bytes that must carry `schema` (any version of it); another record is an
        error."""
        found, record = self.decode(data)
        if found.fingerprint != schema.fingerprint:
            raise DecodeError("unknown_fingerprint", f"expected {schema.name}, got {found.name}")
        return record
