"""Dead letters: a refused record's original bytes, where it came from and why.

Every service's refusals go to the one `dead-letters` topic, written by the service
loop (`streams.run`) from what a handler returns as rejected.

Kafka headers repeat the reason in the style of Kafka Connect's error headers, so
tools that know those can read ours.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from tideline import catalog, serde
from tideline.errors import DecodeError

TOPIC = catalog.topic("dead-letters")
SCHEMA = TOPIC.schema()


@dataclass(frozen=True)
class RejectionError(Exception):
    """Why a record was refused. Raised by pure handlers, turned into a dead letter by the loop."""

    stage: str  # decode, schema, rule, late, internal
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
    source: Source, rejection: RejectionError, service: str
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter for `source`."""
    record: dict[str, Any] = {
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "source_timestamp": None
        if source.timestamp_ms is None
        else datetime.fromtimestamp(source.timestamp_ms / 1000, UTC),
        "key": source.key,
        "value": source.value,
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
    key = f"{source.topic}/{source.partition}/{source.offset}".encode()
    return key, serde.encode(SCHEMA, record), headers
