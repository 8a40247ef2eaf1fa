"""The topic catalog (`schemas/catalog.toml`): each topic's key, value schema and retention,
and which principal may read and write it on a secured cluster.

The one place where a topic meets its schema: code asks for `topic("events")` and
binds it to the settings (its prefixed name) and the project (whose derived schema an
envelope topic carries), then encodes and decodes through the bound topic.
"""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from tideline import schemas, serde
from tideline.errors import SchemaError
from tideline.settings import Settings

CleanupPolicy = Literal["delete", "compact"]

# The broker's own default message.max.bytes (1 MiB plus record-batch overhead).
BROKER_MAX_MESSAGE_BYTES = 1048588
# What a record's value leaves for its key, headers and the batch around it.
RECORD_OVERHEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    key: str
    value: str
    partitions: int
    cleanup_policy: CleanupPolicy
    retention_ms: int
    replication_factor: int
    min_insync_replicas: int  # with acks=all, a write needs this many replicas to land
    max_message_bytes: int | None = None
    training: bool = False  # read by training: kept `training_retention` when that is set

    def replicas(self, brokers: int, settings: Settings) -> int:
        """Its replication factor on a cluster of `brokers`: the setting's if given, else
        the catalog's, capped at the cluster's size."""
        return settings.replication_factor or min(self.replication_factor, brokers)

    def configs(self, replicas: int, settings: Settings) -> dict[str, str]:
        """Topic-level broker configuration, for `replicas` replicas."""
        configs = {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(settings.retention_ms(self.retention_ms, self.training)),
            "min.insync.replicas": str(min(self.min_insync_replicas, replicas)),
        }
        if self.max_message_bytes is not None:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        return configs

    @property
    def value_bytes(self) -> int:
        """The largest value a service writes to this topic: its limit, less the overhead."""
        return (self.max_message_bytes or BROKER_MAX_MESSAGE_BYTES) - RECORD_OVERHEAD_BYTES

    def schema(self) -> schemas.Schema:
        """The value schema as declared: for an envelope (Event, Label, FeatureVector), the
        envelope itself; `bind` with a project gives the project's derived schema."""
        return schemas.load(self.value)

    def full_name(self, settings: Settings) -> str:
        return f"{settings.topic_prefix}{self.name}"

    def bind(self, settings: Settings, derived: Mapping[str, schemas.Schema] = {}) -> "Bound":
        """This topic as a process uses it: its full name, and the schema of its values
        (`derived`: a project's schemas by envelope name, `Project.derived_schemas`)."""
        schema = derived.get(self.value) or self.schema()
        return Bound(self, self.full_name(settings), schema)


@dataclass(frozen=True)
class Bound:
    """A topic with its prefixed name and the one schema its values are written with."""

    topic: Topic
    name: str
    schema: schemas.Schema
    decoder: serde.Decoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", serde.Decoder([self.schema]))

    def encode(self, record: serde.Record) -> bytes:
        return serde.encode(self.schema, record)

    def decode(self, data: bytes | None) -> serde.Record:
        """The record in `data`; DecodeError if it is not one of this topic's."""
        return self.decoder.decode_as(self.schema, data or b"")


@dataclass(frozen=True)
class Principal:
    """A client of a secured cluster (a service, or a business system's role) and the
    topics, by unprefixed name, it may read and write."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]


@cache
def _raw() -> dict[str, Any]:
    path = schemas.schema_dir() / "catalog.toml"
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"{path}: {exc}") from exc


@cache
def topics() -> dict[str, Topic]:
    """Every catalog topic by its unprefixed name."""
    raw = _raw()
    defaults: dict[str, Any] = raw.get("defaults", {})
    result = {}
    for name, entry in raw["topics"].items():
        merged = {**defaults, **entry}
        try:
            result[name] = Topic(name=name, **merged)
        except TypeError as exc:
            raise SchemaError(f"catalog topic {name}: {exc}") from exc
        if merged["cleanup_policy"] not in ("delete", "compact"):
            raise SchemaError(f"catalog topic {name}: bad cleanup_policy")
    return result


@cache
def principals() -> dict[str, Principal]:
    """Every principal the catalog grants access to, by name."""
    result = {}
    for name, entry in _raw().get("principals", {}).items():
        found = Principal(name, tuple(entry.get("reads", ())), tuple(entry.get("writes", ())))
        unknown = sorted(set(found.reads + found.writes) - topics().keys())
        unknown += sorted(f"key {key}" for key in set(entry) - {"reads", "writes"})
        if unknown:
            raise SchemaError(f"catalog principal {name}: unknown {', '.join(unknown)}")
        result[name] = found
    return result


def topic(name: str) -> Topic:
    try:
        return topics()[name]
    except KeyError:
        raise SchemaError(f"no topic {name!r} in the catalog") from None


def max_message_bytes() -> int:
    """The largest record any catalog topic admits: every consumer fetches at least this."""
    return max(t.max_message_bytes or BROKER_MAX_MESSAGE_BYTES for t in topics().values())


def _retention(ms: int) -> str:
    if ms < 0:
        return "forever"
    days = ms / 86_400_000
    return f"{days:g} days" if days >= 1 else f"{ms / 3_600_000:g} hours"


def reference() -> str:
    """docs/topics.md: every topic, its key, value record and retention, from this catalog."""
    lines = [
        "# Topics reference",
        "",
        "Generated from `schemas/catalog.toml` by `tideline topics doc`; do not edit by hand.",
        "Names carry the prefix `TIDELINE_TOPIC_PREFIX` (default `tideline.`). Values are Avro",
        "records in single-object encoding; each record's fields are in `schemas/<record>.avsc`.",
        "",
        "| topic | key | value | partitions | cleanup | retention | what it carries |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in topics().values():
        lines.append(
            f"| `{t.name}` | {t.key} | `{t.value}` | {t.partitions} | {t.cleanup_policy}"
            f" | {_retention(t.retention_ms)} | {t.description} |"
        )
    lines += [
        "",
        "## Who may read and write them",
        "",
        "On a secured cluster (`tideline stack up`), the ACLs `tideline topics create` grants;",
        "`admin`, the stack's owner, may do anything. Each principal may also use the consumer",
        "groups named `<prefix><principal>...`.",
        "",
        "| principal | writes | reads |",
        "|---|---|---|",
    ]
    for p in principals().values():
        writes, reads = (", ".join(f"`{n}`" for n in names) or "-" for names in (p.writes, p.reads))
        lines.append(f"| `{p.name}` | {writes} | {reads} |")
    lines += ["", "## Value records", ""]
    for name in sorted({t.value for t in topics().values()}):
        schema = schemas.load(name)
        doc = schema.parsed.get("doc", "") if isinstance(schema.parsed, dict) else ""
        lines.append(f"- `{name}`: {doc}")
    return "\n".join(lines) + "\n"
