"""The writer-schema store: the compacted `schemas` topic, keyed by fingerprint, in the
spirit of Schema Registry's `_schemas` topic but with no server of its own.

Every service registers the schemas it writes before it writes with them, and refuses
to start when one would break a version already registered (`compatibility.breaking`:
either side could not read the other's records). A reader that meets a fingerprint it
does not know reads the topic up to its end before it decides, so a record written by
another version of any service (older or newer) is resolved to the reader's schema
rather than refused. A fingerprint is a hash of the schema itself: a record on the topic
whose schema does not hash to its key is refused, so no one can re-map a fingerprint.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import fastavro.schema
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from tideline import catalog, compatibility, kafka, schemas, serde
from tideline.errors import DecodeError, SchemaError
from tideline.settings import Settings

log = logging.getLogger(__name__)

TOPIC = catalog.topic("schemas")

KNOWN = Gauge("tideline_schema_store_schemas", "Writer schemas read from the schemas topic.")
REFUSED = Counter(
    "tideline_schema_store_refused_total",
    "Records on the schemas topic that are no schema whose fingerprint is their key, by reason.",
    ["reason"],
)


def own_schemas(derived: Iterable[schemas.Schema] = ()) -> list[schemas.Schema]:
    """Every schema this release reads or writes (the catalog's and a project's derived
    ones) and the versions of them releases before the store wrote."""
    return [*(t.schema() for t in catalog.topics().values()), *derived, *schemas.previous()]


def entry(schema: schemas.Schema, service: str) -> tuple[bytes, bytes]:
    """(key, value) of `schema`'s record on the topic."""
    value = {
        "name": schema.name,
        "schema": json.dumps(schemas.standalone(schema), separators=(",", ":")),
        "service": service,
        "registered_at": int(time.time() * 1000),
    }
    return schema.fingerprint.hex().encode(), serde.encode(TOPIC.schema(), value)


class RefusedError(SchemaError):
    """A record of the schemas topic that is not a schema its key names."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def parse(key: bytes | None, value: bytes | None, decoder: serde.Decoder) -> schemas.Schema:
    """The schema a record of the topic holds; RefusedError if it holds none, or not the one
    its key names."""
    try:
        record = decoder.decode_as(TOPIC.schema(), value or b"")
        parsed = fastavro.schema.parse_schema(json.loads(record["schema"]))
        schema = schemas.Schema.from_parsed(record["name"], parsed)
    except DecodeError as exc:
        raise RefusedError("undecodable", str(exc)) from exc
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        RecursionError,
        fastavro.schema.SchemaParseException,
    ) as exc:
        raise RefusedError("not_a_schema", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("name") != schema.name:
        raise RefusedError("wrong_name", f"not a schema of the record {schema.name} it names")
    if (key or b"").decode(errors="replace") != schema.fingerprint.hex():
        raise RefusedError(
            "wrong_key", f"{key!r} is not its fingerprint {schema.fingerprint.hex()}"
        )
    return schema


def unknown(values: Iterable[bytes | None], writers: serde.Writers) -> bool:
    """Whether any of `values` is a single-object record of a schema `writers` lacks.

    A set of a batch's fingerprints, held against the known ones at once: per record a
    slice and a set insert (a function call and a lookup each cost twice as much)."""
    marker, size = schemas.SINGLE_OBJECT_MARKER, serde.HEADER_SIZE
    found = {v[2:size] for v in values if v is not None and v[:2] == marker and len(v) >= size}
    return not writers.know(found)


class Store:
    """The schemas topic as one process sees it: every writer schema on it, in `writers`."""

    def __init__(self, settings: Settings, who: str, writers: serde.Writers = serde.WRITERS):
        self.who, self.writers = who, writers
        self.topic = TOPIC.bind(settings)
        self._settings = settings
        self._consumer = kafka.consumer(settings, group_id=None)
        self._partitions: list[TopicPartition] = []
        self._stored: dict[bytes, schemas.Schema] = {}
        self._decoder = serde.Decoder([TOPIC.schema()], writers)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        numbers = await kafka.partitions(self._settings, self.topic.name)
        self._partitions = [TopicPartition(self.topic.name, p) for p in numbers]
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        await self.catch_up()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def catch_up(self) -> None:
        """Read the topic up to its end as of now."""
        async with self._lock:
            ends = await self._consumer.end_offsets(self._partitions)
            behind = [tp for tp in self._partitions if await self._consumer.position(tp) < ends[tp]]
            while behind:
                batches = await self._consumer.getmany(*behind, timeout_ms=1000)
                for messages in batches.values():
                    for message in messages:
                        self._take(message.key, message.value)
                behind = [tp for tp in behind if await self._consumer.position(tp) < ends[tp]]
        KNOWN.set(len(self._stored))

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        try:
            schema = parse(key, value, self._decoder)
        except RefusedError as exc:
            REFUSED.labels(exc.reason).inc()
            log.warning("schemas topic: record %r skipped: %s", key, exc)
            return
        self._stored[schema.fingerprint] = schema
        self.writers.add(schema)

    def has(self, schema: schemas.Schema) -> bool:
        return schema.fingerprint in self._stored

    def stored(self, name: str) -> list[schemas.Schema]:
        """The versions of record `name` registered so far, oldest first."""
        return [s for s in self._stored.values() if s.name == name]

    def conflicts(self, schema: schemas.Schema) -> list[str]:
        """What `schema` breaks of each registered version of its record (none: it may be
        written)."""
        return [
            problem
            for old in self.stored(schema.name)
            if old.fingerprint != schema.fingerprint
            and (problem := compatibility.breaking(schema, old))
        ]

    async def register(self, producer: AIOKafkaProducer, writes: Iterable[schemas.Schema]) -> None:
        """Put each schema of `writes` on the topic, acknowledged, unless it is there.

        SchemaError, with nothing written, if one breaks a registered version."""
        await self.catch_up()
        new = {s.fingerprint: s for s in writes if not self.has(s)}
        problems = [f"{s.name}: {p}" for s in new.values() for p in self.conflicts(s)]
        if problems:
            raise SchemaError(
                "refusing to write with a schema that breaks one already written with on "
                f"{self.topic.name}: " + "; ".join(problems)
            )
        entries = [entry(s, self.who) for s in new.values()]
        await asyncio.gather(*[await producer.send(self.topic.name, v, key=k) for k, v in entries])
        await self.catch_up()

    async def ensure(self, values: Iterable[bytes | None]) -> None:
        """Catch up if any of `values` names a fingerprint no writer schema has yet: its
        writer registered it before writing it, so after that it is known if it exists."""
        if unknown(values, self.writers):
            await self.catch_up()


_open: Store | None = None


async def ensure(values: Iterable[bytes | None]) -> None:
    """`Store.ensure` on the process's open store; nothing without one."""
    if _open is not None:
        await _open.ensure(values)


@asynccontextmanager
async def opened(
    settings: Settings,
    who: str,
    derived: Iterable[schemas.Schema] = (),
    writes: Iterable[schemas.Schema] = (),
    producer: AIOKafkaProducer | None = None,
) -> AsyncIterator[Store]:
    """The process's store, open: its own schemas (the catalog's, `derived`) known, `writes`
    registered with `producer`, every other version on the topic read."""
    global _open
    store = Store(settings, who)
    for schema in own_schemas(derived):
        store.writers.add(schema)
    try:
        await store.start()
        if producer is not None:
            await store.register(producer, writes)
        _open = store
        yield store
    finally:
        _open = None
        await store.stop()


@dataclass(frozen=True)
class Review:
    """One schema a release would write, held against the versions of its record on the topic."""

    schema: schemas.Schema
    versions: int  # of its record, registered
    registered: bool  # this very version among them
    problems: list[str]


async def review(settings: Settings, derived: Mapping[str, schemas.Schema]) -> list[Review]:
    """What every topic's schema, a project's derived ones included, would break if written
    now; nothing is registered."""
    store = Store(settings, "review", serde.Writers())
    try:
        await store.start()
        writes = {
            s.name: s for s in (t.bind(settings, derived).schema for t in catalog.topics().values())
        }
        return [
            Review(s, len(store.stored(s.name)), store.has(s), store.conflicts(s))
            for _, s in sorted(writes.items())
        ]
    finally:
        await store.stop()
