"""Dead letters: a refused record's original bytes, where it came from and why.

Every service's refusals go to the one `dead-letters` topic, written by the service
loop (`streams.run`) from what a handler returns as rejected.

Kafka headers repeat the reason in the style of Kafka Connect's error headers, so
tools that know those can read ours.

A dead letter always fits its topic: the topic admits more than any catalog topic
does, and a value larger than that still (a topic configured past the catalog) is
cut to what fits, with its full size and sha256 in the headers `tideline.value.bytes`
and `tideline.value.sha256`; such a letter cannot be replayed.
"""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from tideline import catalog, serde
from tideline.errors import DecodeError

TOPIC = catalog.topic("dead-letters")
SCHEMA = TOPIC.schema()
TRUNCATED_BYTES, TRUNCATED_SHA256 = "tideline.value.bytes", "tideline.value.sha256"


@dataclass(frozen=True)
class RejectionError(Exception):
    """Why a record was refused. Raised by pure handlers, turned into a dead letter by the loop."""

    stage: str  # decode, schema, rule, late, size, signature, delivery, internal
    error_class: str
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"

    @classmethod
    def undecodable(cls, exc: DecodeError) -> "RejectionError":
        """The rejection of a record that is not one of its topic's."""
        return cls("decode", exc.reason, str(exc))


@dataclass(frozen=True)
class Source:
    """Where a consumed record came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, message: "ConsumerRecord[bytes, bytes]") -> "Source":
        return cls(
            message.topic,
            message.partition,
            message.offset,
            message.timestamp,
            message.key,
            message.value,
            tuple(message.headers),
        )


def decoded(
    topic: catalog.Bound,
    sources: Iterable[Source],
    rejected: list[tuple[Source, RejectionError]],
) -> Iterator[tuple[Source, serde.Record]]:
    """Each source with its record as `topic` carries it; one that does not decode goes
    to `rejected`, with the reason, for its dead letter."""
    for source in sources:
        try:
            record = topic.decode(source.value)
        except DecodeError as exc:
            rejected.append((source, RejectionError.undecodable(exc)))
            continue
        yield source, record


def dead_letter(
    source: Source, rejection: RejectionError, service: str, budget: int = TOPIC.value_bytes
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter for `source`, at most `budget` bytes of it
    the source's own (its value cut if need be)."""
    value = source.value
    context = len(source.key or b"") + sum(len(k) + len(v) for k, v in source.headers)
    cut: list[tuple[str, bytes]] = []
    if value is not None and len(value) + context > budget:
        cut = [
            (TRUNCATED_BYTES, str(len(value)).encode()),
            (TRUNCATED_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        value = value[: max(0, budget - context)]
    record: dict[str, Any] = {
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "source_timestamp": None
        if source.timestamp_ms is None
        else datetime.fromtimestamp(source.timestamp_ms / 1000, UTC),
        "key": source.key,
        "value": value,
        "headers": [{"key": k, "value": v} for k, v in source.headers],
        "stage": rejection.stage,
        "rule": rejection.rule,
        "error_class": rejection.error_class,
        "error_message": rejection.message,
        "service": service,
        "failed_at": datetime.now(UTC),
    }
    headers = [
        ("__connect.errors.topic", source.topic.encode()),
        ("__connect.errors.partition", str(source.partition).encode()),
        ("__connect.errors.offset", str(source.offset).encode()),
        ("__connect.errors.stage", rejection.stage.encode()),
        ("__connect.errors.exception.class.name", rejection.error_class.encode()),
        ("__connect.errors.exception.message", rejection.message.encode()),
    ]
    if rejection.rule is not None:
        headers.append(("tideline.rule", rejection.rule.encode()))
    headers += cut
    key = f"{source.topic}/{source.partition}/{source.offset}".encode()
    return key, serde.encode(SCHEMA, record), headers
