"""Ingest as a pure function of (raw record, dedup state): canonical output, or a rejection."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from tideline import catalog, serde
from tideline.dlq import RejectionError
from tideline.project import Project
from tideline.rules import first_violation

from services.ingest import parse
from services.ingest.dedup import Deduplicator

# On each record ingest writes to `events`: its event id, which dedup re-learns unread.
EVENT_ID_HEADER = "tideline.event_id"
# On each record it writes to `labels`: a digest of the label's value, so that another
# value for the same event (a correction) is told from a repeat, also after a restart.
LABEL_DIGEST_HEADER = "tideline.label_digest"


def label_digest(payload: dict[str, Any]) -> str:
    return hashlib.blake2b(
        orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), digest_size=8
    ).hexdigest()


@dataclass(frozen=True)
class Output:
    topic: str  # catalog name, without prefix
    key: bytes
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()
    correction: bool = False  # a label with another value than the one written before


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# The most a canonical record may take: what `events` and `labels` admit.
OUTPUT_BYTES = min(catalog.topic(t).value_bytes for t in ("events", "labels"))


class Ingest:
    def __init__(
        self,
        project: Project,
        dedup_records: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_record_bytes: int = OUTPUT_BYTES,
    ) -> None:
        self.project = project
        self.clock = clock
        self.dedup_records = dedup_records
        self.max_record_bytes = max_record_bytes
        self.event_decoder = serde.Decoder([project.event_schema])
        self.label_decoder = serde.Decoder([project.label_schema])
        self.event_fields = parse.Fields(project.event.fields, project.event.optional)
        self.label_fields = parse.Fields({project.label.field: project.label.type}, frozenset())
        # Ids of the last `dedup_records` records of each partition of `events`, `labels`.
        self.event_ids = Deduplicator(dedup_records * catalog.topic("events").partitions)
        self.label_ids = Deduplicator(dedup_records * catalog.topic("labels").partitions)

    def event(self, value: bytes | None) -> Output | None:
        """The canonical event, or None for a duplicate; raises RejectionError."""
        spec = self.project.event
        raw = parse.decode(self._bounded(value), self.event_decoder)
        if "payload" in raw and isinstance(raw.get("payload"), dict):  # our Avro envelope
            record = raw
            if record["entity_id"] != str(record["payload"][spec.entity_key]):
                raise RejectionError(
                    "schema", "EntityMismatch", "entity_id differs from the entity key"
                )
        else:
            body = dict(raw)
            event_id = _event_id(body.pop("event_id", None))
            event_time = parse.timestamp(body.pop("event_time", None), "event_time")
            payload = self.event_fields(body)
            record = {
                "event_id": event_id,
                "entity_id": str(payload[spec.entity_key]),
                "event_time": event_time,
                "payload": payload,
            }
        violation = first_violation(
            self.project.rules, record["payload"], record["event_time"], self.clock()
        )
        if violation is not None:
            raise RejectionError("rule", "RuleViolation", violation[1], rule=violation[0])
        if not self.event_ids.first_time(record["event_id"]):
            return None
        return Output(
            topic="events",
            key=record["entity_id"].encode(),
            value=_fitting(serde.encode(self.project.event_schema, record)),
            timestamp_ms=_millis(record["event_time"]),
            headers=((EVENT_ID_HEADER, record["event_id"].encode()),),
        )

    def label(self, value: bytes | None) -> Output | None:
        """The canonical label, or None for a duplicate; raises RejectionError."""
        raw = parse.decode(self._bounded(value), self.label_decoder)
        if "payload" in raw and isinstance(raw.get("payload"), dict):
            record = raw
        else:
            body = dict(raw)
            event_id = _event_id(body.pop("event_id", None))
            label_time = body.pop("label_time", None)
            record = {
                "event_id": event_id,
                "label_time": self.clock()
                if label_time is None
                else parse.timestamp(label_time, "label_time"),
                "payload": self.label_fields(body),
            }
        # A repeat has the value written last for its event; another value corrects it.
        digest, before = label_digest(record["payload"]), self.label_ids.last(record["event_id"])
        if not self.label_ids.first_time(record["event_id"], digest):
            return None
        return Output(
            topic="labels",
            key=record["event_id"].encode(),
            value=_fitting(serde.encode(self.project.label_schema, record)),
            timestamp_ms=_millis(record["label_time"]),
            headers=((LABEL_DIGEST_HEADER, digest.encode()),),
            correction=before is not None,
        )

    def _bounded(self, value: bytes | None) -> bytes | None:
        """Refused before any parsing when over the size ingest takes."""
        if value is not None and len(value) > self.max_record_bytes:
            raise RejectionError(
                "size",
                "RecordTooLarge",
                f"{len(value)} bytes; ingest takes records of at most {self.max_record_bytes}",
            )
        return value

    def remember(self, topic: str, event_id: str, digest: str | None = None) -> None:
        """Mark an id already written (read back from the output topic, in its order); a
        label's with the digest of its value."""
        (self.event_ids if topic == "events" else self.label_ids).first_time(event_id, digest or "")


def _fitting(value: bytes) -> bytes:
    if len(value) > OUTPUT_BYTES:
        raise RejectionError(
            "size", "OutputTooLarge", f"canonical record of {len(value)} bytes, over {OUTPUT_BYTES}"
        )
    return value


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RejectionError("schema", "MissingField", "event_id must be a non-empty string")
    return value
