"""`tideline run ingest` against the real broker: bad input goes to the DLQ, the service lives on."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tideline import kafka, project, schemas, serde
from tideline.settings import Settings

from ...projects import EXAMPLES

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, settings: Settings) -> None:
        self.metrics_port = _free_port()
        self.env = {
            **os.environ,
            "TIDELINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "TIDELINE_TOPIC_PREFIX": settings.topic_prefix,
            "TIDELINE_PROJECT": str(EXAMPLES[0]),
            "TIDELINE_INGEST_METRICS_PORT": str(self.metrics_port),
            "TIDELINE_INGEST_GROUP_ID": f"ingest-{uuid.uuid4().hex[:8]}",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tideline.cli", "run", "ingest"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            return str(r.read().decode())

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc.stderr.close()  # type: ignore[union-attr]
        return code


@pytest.fixture
async def service(settings: Settings) -> Iterator[Service]:
    await kafka.create_topics(settings)
    svc = Service(settings)
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


async def _produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for value in values:
            await producer.send(settings.topic(topic), value)
        await producer.flush()
    finally:
        await producer.stop()


async def _collect(settings: Settings, topic: str, expected: int, timeout_s: float = 60) -> list:  # type: ignore[type-arg]
    consumer = kafka.consumer(settings, settings.topic(topic), group_id=f"t-{uuid.uuid4().hex}")
    await consumer.start()
    found: list = []  # type: ignore[type-arg]
    try:
        deadline = datetime.now(UTC).timestamp() + timeout_s
        while len(found) < expected and datetime.now(UTC).timestamp() < deadline:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(messages)
        # a little longer, to catch anything beyond what was expected
        for messages in (await consumer.getmany(timeout_ms=1500)).values():
            found.extend(messages)
    finally:
        await consumer.stop()
    return found


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
    await _produce(settings, "events.raw", [*valid[:10], *invalid, *valid[10:], duplicate])

    events = await _collect(settings, "events", len(valid))
    dead = await _collect(settings, "ingest.dlq", len(invalid))

    decoder = serde.Decoder([CARDS.event_schema])
    ids = sorted(decoder.decode(m.value)[1]["event_id"] for m in events)
    assert ids == sorted([f"ok-{i}" for i in range(20)] + ["avro-1"])  # each once, none lost

    letters = serde.Decoder([schemas.load("tideline.DeadLetter")])
    by_value = {letters.decode(m.value)[1]["value"]: (letters.decode(m.value)[1], m) for m in dead}
    assert set(by_value) == set(invalid)
    for original, stage in invalid.items():
        letter, message = by_value[original]
        assert letter["stage"] == stage
        assert letter["source_topic"] == settings.topic("events.raw")
        assert letter["service"] == "ingest"
        assert letter["error_message"]
        headers = dict(message.headers)
        assert headers["__connect.errors.topic"] == settings.topic("events.raw").encode()
        assert int(headers["__connect.errors.offset"]) == letter["source_offset"]
    assert by_value[out_of_range][0]["rule"] == "range:amount"

    assert service.proc is not None
    assert service.proc.poll() is None, "the service died"
    text = service.metrics()
    assert 'tideline_ingest_duplicates_total{topic="' in text
    assert "tideline_ingest_rejected_total" in text
    assert service.stop() == 0


async def test_a_restarted_ingest_still_drops_repeats(settings: Settings, service: Service) -> None:
    values = [_card(f"r-{i}") for i in range(5)]
    await _produce(settings, "events.raw", values)
    assert len(await _collect(settings, "events", 5)) == 5
    service.stop()

    service.env["TIDELINE_INGEST_GROUP_ID"] += "-fresh"  # re-reads events.raw from the start
    service.start()
    await _produce(settings, "events.raw", [*values, _card("r-new")])
    events = await _collect(settings, "events", 6)
    decoder = serde.Decoder([CARDS.event_schema])
    assert sorted(decoder.decode(m.value)[1]["event_id"] for m in events) == sorted(
        [f"r-{i}" for i in range(5)] + ["r-new"]
    )
