"""`tideline run ingest` against the real broker: bad input goes to the DLQ, the service lives on."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from tideline import catalog, kafka, project, schemas, serde
from tideline.settings import Settings

from services.ingest.handler import EVENT_ID_HEADER

from ...examples import newer_version, oversized
from ...projects import EXAMPLES
from .running import FORGED, Service, collect, produce

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    await kafka.create_topics(settings)
    svc = Service("ingest", settings)
    svc.env["TIDELINE_INGEST_GROUP_ID"] = f"{settings.topic_prefix}ingest.{uuid.uuid4().hex[:8]}"
    svc.start()
    yield svc
    if svc.proc is not None and svc.proc.poll() is None:
        svc.stop()


def _card(event_id: str, **overrides: object) -> bytes:
    event: dict[str, object] = {
        "event_id": event_id,
        "event_time": datetime.now(UTC).isoformat(),
        "card_id": f"c-{event_id}",
        "merchant_id": "m-1",
        "category": "grocery",
        "amount": 10.0,
        "country": "FR",
        "channel": "web",
        "card_present": False,
    }
    event.update(overrides)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


async def test_bad_input_goes_to_the_dlq_and_valid_input_to_events(
    settings: Settings, service: Service
) -> None:
    valid_avro = serde.encode(
        CARDS.event_schema,
        {
            "event_id": "avro-1",
            "entity_id": "c-9",
            "event_time": datetime.now(UTC),
            "payload": {
                "card_id": "c-9",
                "merchant_id": None,
                "category": "fuel",
                "amount": 50.0,
                "country": "DE",
                "channel": "pos",
                "card_present": True,
            },
        },
    )
    wrong_schema = serde.encode(schemas.load("tideline.Trigger"), {"kind": "x", "id": "y"})
    valid = [_card(f"ok-{i}") for i in range(20)] + [valid_avro]
    out_of_range = _card("range", amount=-3.0)
    invalid = {
        b"\xde\xad\xbe\xef garbage": "decode",
        wrong_schema: "decode",
        _card("missing", amount=...): "schema",
        out_of_range: "rule",
        _card("category", category="casino"): "rule",
    }
    duplicate = _card("ok-0")
    await produce(settings, "events.raw", [*valid[:10], *invalid, *valid[10:], duplicate])

    events = await collect(settings, "events", len(valid))
    dead = await collect(settings, "dead-letters", len(invalid))

    decoder = serde.Decoder([CARDS.event_schema])
    ids = sorted(decoder.decode(m.value)[1]["event_id"] for m in events)
    assert ids == sorted([f"ok-{i}" for i in range(20)] + ["avro-1"])  # each once, none lost

    letters = serde.Decoder([schemas.load("tideline.DeadLetter")])
    by_value = {letters.decode(m.value)[1]["value"]: (letters.decode(m.value)[1], m) for m in dead}
    assert set(by_value) == set(invalid)
    for original, stage in invalid.items():
        letter, message = by_value[original]
        assert letter["stage"] == stage
        assert letter["source_topic"] == catalog.topic("events.raw").full_name(settings)
        assert letter["service"] == "ingest"
        assert letter["error_message"]
        headers = dict(message.headers)
        assert (
            headers["__connect.errors.topic"]
            == catalog.topic("events.raw").full_name(settings).encode()
        )
        assert int(headers["__connect.errors.offset"]) == letter["source_offset"]
    assert by_value[out_of_range][0]["rule"] == "range:amount"

    assert service.proc is not None
    assert service.proc.poll() is None, "the service died"
    text = service.metrics()
    assert 'tideline_ingest_duplicates_total{topic="' in text
    assert service.metric("tideline_dead_letters_total", service="ingest") == len(invalid)
    assert service.stop() == 0


async def test_a_restarted_ingest_still_drops_repeats(settings: Settings, service: Service) -> None:
    values = [_card(f"r-{i}") for i in range(5)]
    await produce(settings, "events.raw", values)
    assert len(await collect(settings, "events", 5)) == 5
    service.stop()

    # what the restart re-reads its ids from holds records no ingest wrote, up to the
    # topics' size limit: they are skipped
    for topic, schema in (("events", CARDS.event_schema), ("labels", CARDS.label_schema)):
        forged = [b"\x00garbage", newer_version(schema), *oversized(topic, schema)]
        await produce(settings, topic, forged, headers=[FORGED, (EVENT_ID_HEADER, b"\xff")])
    service.env["TIDELINE_INGEST_GROUP_ID"] += "-fresh"  # re-reads events.raw from the start
    service.start()
    await produce(settings, "events.raw", [*values, _card("r-new")])
    found = await collect(settings, "events", len(values) + len(forged) + 1)
    events = [m for m in found if FORGED not in m.headers]
    decoder = serde.Decoder([CARDS.event_schema])
    assert sorted(decoder.decode(m.value)[1]["event_id"] for m in events) == sorted(
        [f"r-{i}" for i in range(5)] + ["r-new"]
    )
    assert service.alive()


async def test_a_restarted_ingest_tells_a_corrected_label_from_a_repeat(
    settings: Settings, service: Service
) -> None:
    def label(value: bool) -> bytes:
        return json.dumps({"event_id": "fixed-1", "is_fraud": value}).encode()

    await produce(
        settings, "labels.raw", [label(True), label(True), label(False)], [b"fixed-1"] * 3
    )
    assert len(await collect(settings, "labels", 2)) == 2
    assert service.metric("tideline_ingest_label_corrections_total") == 1
    service.stop()
    service.start()  # re-learns the last value written, from its header
    await produce(settings, "labels.raw", [label(False), label(True)], [b"fixed-1"] * 2)
    service.wait_for("tideline_ingest_label_corrections_total", 1)
    found = await collect(settings, "labels", 3)
    decoder = serde.Decoder([CARDS.label_schema])
    assert [decoder.decode(m.value)[1]["payload"]["is_fraud"] for m in found] == [True, False, True]
    raw = catalog.topic("labels.raw").full_name(settings)
    assert service.metric("tideline_ingest_duplicates_total", topic=raw) == 1  # since the restart


async def test_the_group_is_per_model_and_takes_over_the_former_group_s_place(
    settings: Settings, running: list[Service]
) -> None:
    """An upgrade from groups named per service (`<prefix>ingest`) re-reads nothing."""
    await kafka.create_topics(settings)
    await produce(settings, "events.raw", [_card(f"old-{i}") for i in range(30)])
    raw = catalog.topic("events.raw").full_name(settings)
    former = kafka.consumer(settings, group_id=f"{settings.topic_prefix}ingest")
    async with kafka.started(former):  # what the old release had committed: all 30 read
        partitions = [TopicPartition(raw, p) for p in await kafka.partitions(settings, raw)]
        former.assign(partitions)
        await former.commit(await former.end_offsets(partitions))
    svc = Service("ingest", settings)
    svc.start()
    running.append(svc)
    await produce(settings, "events.raw", [_card("new-1")])
    svc.wait_for("tideline_ingest_records_out_total", 1, topic="events")
    async with kafka.admin_session(settings) as client:
        groups = {g[0] for g in await client.list_consumer_groups()}
    assert f"{settings.topic_prefix}ingest.{CARDS.name}" in groups
    events = await collect(settings, "events", 1)
    written = catalog.topic("events").bind(settings, CARDS.derived_schemas)
    assert [written.decode(m.value)["event_id"] for m in events] == ["new-1"]
    assert svc.metric("tideline_ingest_records_in_total") == 1
    assert svc.stop() == 0
