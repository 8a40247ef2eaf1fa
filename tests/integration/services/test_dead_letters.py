"""Every record a service cannot read, on every topic it consumes, becomes a dead letter with
its bytes and the reason, and the service carries on."""

from typing import Any

import pytest
from tideline import catalog, dlq, kafka, project
from tideline.settings import Settings

import services

from ...examples import example, newer_version
from ...projects import EXAMPLES
from .running import Service, collect, produce, produce_signed, start_service

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
# Serving consumes only once it has a champion: its refusals are in test_serving.
READERS = ("ingest", "featurestore", "monitor", "trainer", "registry", "alerts")
# alerts starts a new group at the end (it pages for what happens from now on): here, at
# the beginning, so what the test writes while it joins is read too
START = {"alerts": {"TIDELINE_ALERTS_OFFSET_RESET": "earliest"}}


def _unreadable(topic: catalog.Bound) -> dict[str, bytes]:
    """What no service can read on `topic`, by what it is."""
    record = topic.encode(example(topic.schema.parsed))
    other = catalog.topic("dead-letters" if topic.topic.name != "dead-letters" else "labels")
    limit = topic.topic.max_message_bytes or catalog.BROKER_MAX_MESSAGE_BYTES
    return {
        "garbage": b"\x00\xffgarbage",
        "empty": b"",
        "truncated": record[: len(record) // 2],
        "another topic's record": other.bind(Settings()).encode(example(other.schema().parsed)),
        "a newer schema's record": newer_version(topic.schema),
        # as large as the topic admits: its dead letter, bytes and context, must fit too
        "oversized": b"\xff" * (limit - 1024),
    }


@pytest.mark.parametrize("name", READERS)
async def test_what_a_service_cannot_read_becomes_a_dead_letter(
    name: str, settings: Settings, running: list[Service]
) -> None:
    await kafka.create_topics(settings)
    declared = services.declared(name)
    svc = start_service(name, settings, running, **START.get(name, {}))
    sent: dict[tuple[str, bytes], str] = {}
    for handle in declared.consumes:
        topic = handle.bind(settings, CARDS.derived_schemas)
        odd = _unreadable(topic)
        if handle.name == "models.updated":  # signed, as by the registry: unreadable, not forged
            await produce_signed(settings, [(value, b"k") for value in odd.values()])
        else:
            await produce(settings, handle.name, list(odd.values()), keys=[b"k"] * len(odd))
        sent |= {(topic.name, value): what for what, value in odd.items()}

    letters = dlq.TOPIC.bind(settings)
    found = [letters.decode(m.value) for m in await collect(settings, "dead-letters", len(sent))]
    mine: dict[tuple[str, bytes], Any] = {(f["source_topic"], f["value"]): f for f in found}
    assert set(mine) == set(sent), f"{name} left out {set(sent) - set(mine)}"
    for key, letter in mine.items():
        assert letter["service"] == name
        assert letter["stage"] in ("decode", "schema", "size"), (sent[key], letter)
        assert letter["error_message"]
    total = svc.wait_for("tideline_dead_letters_total", len(sent), service=name)
    assert total == len(sent)
    assert svc.alive()
    assert svc.stop() == 0  # and it stops cleanly, having committed past them
