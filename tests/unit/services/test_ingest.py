import json
from datetime import UTC, datetime

import pytest
from tideline import project, schemas, serde
from tideline.dlq import RejectionError

from services.ingest.dedup import Deduplicator
from services.ingest.handler import LABEL_DIGEST_HEADER, OUTPUT_BYTES, Ingest

from ...examples import example
from ...projects import EXAMPLES

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CARDS = project.load(EXAMPLES[0])


def card(**overrides: object) -> bytes:
    event = {
        "event_id": "e-1",
        "event_time": "2026-11-24T11:59:00+00:00",
        "card_id": "c-42",
        "merchant_id": "m-1",
        "category": "grocery",
        "amount": 12.5,
        "country": "FR",
        "channel": "pos",
        "card_present": True,
    }
    event.update(overrides)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


@pytest.fixture
def ingest() -> Ingest:
    return Ingest(CARDS, 1000, clock=lambda: NOW)


def test_json_event_becomes_canonical_avro(ingest: Ingest) -> None:
    out = ingest.event(card())
    assert out is not None
    assert out.topic == "events"
    assert out.key == b"c-42"
    assert out.timestamp_ms == int(datetime(2026, 11, 24, 11, 59, tzinfo=UTC).timestamp() * 1000)
    record = serde.Decoder([CARDS.event_schema]).decode(out.value)[1]
    assert record["entity_id"] == "c-42"
    assert record["payload"]["amount"] == 12.5
    assert record["event_time"] == datetime(2026, 11, 24, 11, 59, tzinfo=UTC)


def test_avro_event_passes_through(ingest: Ingest) -> None:
    record = {
        "event_id": "e-9",
        "entity_id": "c-1",
        "event_time": NOW,
        "payload": {
            "card_id": "c-1",
            "merchant_id": None,
            "category": "fuel",
            "amount": 3.0,
            "country": "DE",
            "channel": "app",
            "card_present": False,
        },
    }
    out = ingest.event(serde.encode(CARDS.event_schema, record))
    assert out is not None
    assert serde.Decoder([CARDS.event_schema]).decode(out.value)[1] == record


def test_epoch_millis_and_integer_amounts_are_accepted(ingest: Ingest) -> None:
    out = ingest.event(card(event_time=int(NOW.timestamp() * 1000), amount=12))
    assert out is not None


def test_repeats_are_dropped(ingest: Ingest) -> None:
    assert ingest.event(card()) is not None
    assert ingest.event(card()) is None
    assert ingest.event(card(event_id="e-2")) is not None


@pytest.mark.parametrize(
    ("value", "stage", "error_class", "rule"),
    [
        (b"\x00\x13garbage\xff", "decode", "UnicodeDecodeError", None),
        (b"", "decode", "EmptyValue", None),
        (b"[1, 2]", "decode", "NotAnObject", None),
        (b"{not json", "decode", "JSONDecodeError", None),
        (
            serde.encode(schemas.load("tideline.Trigger"), {"kind": "drift", "id": "x"}),
            "decode",
            "DecodeError",
            None,
        ),
        (card(amount=...), "schema", "MissingField", None),
        (card(event_id=...), "schema", "MissingField", None),
        (card(amount="12"), "schema", "WrongType", None),
        (card(card_present=1), "schema", "WrongType", None),
        (card(colour="red"), "schema", "UnknownField", None),
        (card(event_time="2026-11-24T11:59:00"), "schema", "NaiveTime", None),
        (card(event_time="yesterday"), "schema", "BadTime", None),
        (card(amount=-5.0), "rule", "RuleViolation", "range:amount"),
        (card(channel="fax"), "rule", "RuleViolation", "allowed:channel"),
        (card(event_time="2027-01-01T00:00:00+00:00"), "rule", "RuleViolation", "event_time"),
    ],
)
def test_bad_events_are_rejected_with_their_reason(
    ingest: Ingest, value: bytes, stage: str, error_class: str, rule: str | None
) -> None:
    with pytest.raises(RejectionError) as info:
        ingest.event(value)
    assert (info.value.stage, info.value.error_class, info.value.rule) == (stage, error_class, rule)


def test_labels(ingest: Ingest) -> None:
    out = ingest.label(json.dumps({"event_id": "e-1", "is_fraud": True}).encode())
    assert out is not None
    assert out.key == b"e-1"
    record = serde.Decoder([CARDS.label_schema]).decode(out.value)[1]
    assert record["payload"] == {"is_fraud": True}
    assert record["label_time"] == NOW
    assert ingest.label(json.dumps({"event_id": "e-1", "is_fraud": True}).encode()) is None
    with pytest.raises(RejectionError):
        ingest.label(json.dumps({"event_id": "e-2", "is_fraud": "yes"}).encode())


def _label(event_id: str, value: bool) -> bytes:
    return json.dumps({"event_id": event_id, "is_fraud": value}).encode()


def test_a_label_with_another_value_is_a_correction_not_a_repeat(ingest: Ingest) -> None:
    first = ingest.label(_label("e-9", True))
    assert first is not None
    assert not first.correction
    assert ingest.label(_label("e-9", True)) is None  # a repeat
    corrected = ingest.label(_label("e-9", False))
    assert corrected is not None
    assert corrected.correction
    assert ingest.label(_label("e-9", False)) is None  # the correction, repeated

    restarted = Ingest(CARDS, 1000, clock=lambda: NOW)  # re-learns from what was written
    for written in (first, corrected):
        digest = dict(written.headers)[LABEL_DIGEST_HEADER].decode()
        restarted.remember("labels", written.key.decode(), digest)
    assert restarted.label(_label("e-9", False)) is None
    back = restarted.label(_label("e-9", True))  # the first value again: corrects the second
    assert back is not None
    assert back.correction
    other = restarted.label(_label("e-10", True))
    assert other is not None
    assert not other.correction


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_project_ingests_its_own_avro(path: object) -> None:
    proj = project.load(path)  # type: ignore[arg-type]
    ingest = Ingest(proj, 1000, clock=lambda: NOW)
    record = example(proj.event_schema.parsed)
    record["event_time"] = NOW
    record["entity_id"] = record["payload"][proj.event.entity_key]
    for rule in proj.rules:  # make the example satisfy the project's rules
        field = getattr(rule, "field", None)
        if getattr(rule, "min", None) is not None:
            record["payload"][field] = float(getattr(rule, "min"))  # noqa: B009
        if getattr(rule, "values", None):
            record["payload"][field] = sorted(getattr(rule, "values"))[0]  # noqa: B009
    assert ingest.event(serde.encode(proj.event_schema, record)) is not None


def test_dedup_remembers_the_last_ids_whatever_their_event_times() -> None:
    dedup = Deduplicator(3)
    assert all(dedup.first_time(i) for i in "abc")
    assert not dedup.first_time("a")
    assert dedup.first_time("d")  # "a" was the oldest: forgotten now
    assert len(dedup) == 3
    assert dedup.first_time("a")
    assert not any(dedup.first_time(i) for i in "da")


def test_a_backfill_of_old_events_is_deduplicated_too(ingest: Ingest) -> None:
    old = "2026-10-26T12:00:00+00:00"  # four weeks before NOW: a backfill
    assert ingest.event(card(event_id="b-1", event_time=old)) is not None
    assert ingest.event(card(event_id="b-1", event_time=old)) is None
    out = ingest.event(card(event_id="b-2"))
    assert out is not None
    assert dict(out.headers)["tideline.event_id"] == b"b-2"


@pytest.mark.parametrize("over", [0, 1, 4096])
def test_a_record_over_the_size_limit_is_refused_unread(over: int) -> None:
    at_limit = card(merchant_id="m" * 200)
    ingest = Ingest(CARDS, 1000, clock=lambda: NOW, max_record_bytes=len(at_limit))
    assert ingest.event(at_limit) is not None  # at the limit: taken
    too_big = card(event_id="e-2", merchant_id="m" * (201 + over))
    with pytest.raises(RejectionError) as refused:
        ingest.event(too_big)
    assert (refused.value.stage, refused.value.error_class) == ("size", "RecordTooLarge")
    with pytest.raises(RejectionError, match="size"):  # garbage too: unread, so not a decode error
        ingest.label(b"\xff" * (len(at_limit) + 1 + over))


def test_a_canonical_record_over_what_events_admits_is_refused() -> None:
    ingest = Ingest(CARDS, 1000, clock=lambda: NOW, max_record_bytes=2**24)
    with pytest.raises(RejectionError) as refused:
        ingest.event(card(merchant_id="m" * OUTPUT_BYTES))
    assert (refused.value.stage, refused.value.error_class) == ("size", "OutputTooLarge")
