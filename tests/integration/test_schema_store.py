"""Schemas that evolve, on the real broker: services of two releases read each other's
records through the `schemas` topic, and a breaking change is refused before anything
is written with it."""

import copy
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tideline import catalog, kafka, project, schema_store, serde
from tideline.project import Project
from tideline.settings import Settings

from ops import launcher

from ..projects import EXAMPLES
from .services.running import Service, collect, produce

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])


def _variant(tmp_path: Path, name: str, optional: bool) -> Path:
    """The cards project one release on: events gain a `device` field, optional or not."""
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLES[0].read_text()))
    raw["event"]["fields"]["device"] = "string"
    if optional:
        raw["event"]["optional"] = [*raw["event"].get("optional", []), "device"]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _event(definition: Project, event_id: str, **extra: Any) -> dict[str, Any]:
    payload = {
        "card_id": "c-7",
        "merchant_id": None,
        "category": "fuel",
        "amount": 42.0,
        "country": "FR",
        "channel": "pos",
        "card_present": True,
    }
    return {
        "event_id": event_id,
        "entity_id": "c-7",
        "event_time": datetime.now(UTC),
        "payload": payload | extra,
    }


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for svc in started:
        if svc.alive():
            svc.stop()


def _run(settings: Settings, name: str, services: list[Service], definition: Path) -> Service:
    svc = Service(name, settings, definition).start()
    services.append(svc)
    svc.wait_polling()
    return svc


async def _stored(settings: Settings) -> schema_store.Store:
    store = schema_store.Store(settings, "test", serde.Writers())
    await store.start()
    await store.stop()
    return store


async def test_each_release_reads_the_records_of_the_other(
    settings: Settings, services: list[Service], tmp_path: Path
) -> None:
    await kafka.create_topics(settings)
    newer_path = _variant(tmp_path, "newer", optional=True)
    newer = project.load(newer_path)
    old_ingest = _run(settings, "ingest", services, EXAMPLES[0])  # registers release N
    assert old_ingest.stop() == 0
    _run(settings, "ingest", services, newer_path)  # release N+1 takes over
    _run(settings, "featurestore", services, EXAMPLES[0])  # still on N

    # a business system still on N, and one already on N+1, write events.raw in Avro
    old = serde.encode(CARDS.event_schema, _event(CARDS, "from-n"))
    new = serde.encode(newer.event_schema, _event(newer, "from-n+1", device="phone"))
    await produce(settings, "events.raw", [old, new], [b"c-7", b"c-7"])

    # ingest N+1 read the N record (device at its default) and wrote both with N+1
    events = await collect(settings, "events", 2)
    written = serde.Decoder([newer.event_schema], serde.Writers())
    payloads = {r["event_id"]: r["payload"] for r in (written.decode(m.value)[1] for m in events)}
    assert payloads["from-n"]["device"] is None
    assert payloads["from-n+1"]["device"] == "phone"
    # the feature store on N read those N+1 records: a vector for each, nothing refused
    vectors = await collect(settings, "features", 2)
    mine = serde.Decoder([CARDS.feature_schema], serde.Writers())
    assert sorted(mine.decode(m.value)[1]["event_id"] for m in vectors) == ["from-n", "from-n+1"]
    assert sum(1 for _ in await collect(settings, "dead-letters", 0, timeout_s=1)) == 0

    # and the record of N+1 is read by a reader on N through the store alone
    store = await _stored(settings)
    reader = serde.Decoder([CARDS.event_schema], store.writers)
    assert reader.decode_as(CARDS.event_schema, new)["payload"] == _event(CARDS, "x")["payload"]
    assert [s.fingerprint for s in store.stored(CARDS.event_schema.name)] == [
        CARDS.event_schema.fingerprint,
        newer.event_schema.fingerprint,
    ]


def _check(settings: Settings, definition: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "project", "check", str(definition)],
        env=launcher.environment(settings, EXAMPLES[0]) | {"COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_breaking_change_is_refused_by_project_check_and_at_start(
    settings: Settings, services: list[Service], tmp_path: Path
) -> None:
    await kafka.create_topics(settings)
    _run(settings, "ingest", services, EXAMPLES[0])  # the running release
    compatible, breaking = _variant(tmp_path, "ok", True), _variant(tmp_path, "bad", False)

    running = _check(settings, EXAMPLES[0])
    assert running.returncode == 0, running.stdout + running.stderr
    assert "running" in running.stdout

    fine = _check(settings, compatible)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "compatible change" in fine.stdout

    refused = _check(settings, breaking)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "breaks" in refused.stdout
    assert "device" in refused.stdout
    assert "no service would start with it" in refused.stdout

    before = await _stored(settings)
    svc = Service("ingest", settings, breaking)
    svc.env["TIDELINE_INGEST_GROUP_ID"] = f"{settings.topic_prefix}ingest.another"
    svc.start()
    services.append(svc)
    assert svc.proc is not None
    assert svc.proc.wait(timeout=120) == 1
    assert "refusing to write with a schema that breaks" in svc.log.read_text()
    after = await _stored(settings)
    assert len(after.stored(CARDS.event_schema.name)) == len(before.stored(CARDS.event_schema.name))


async def test_forged_records_on_the_schemas_topic_are_skipped(
    settings: Settings, services: list[Service]
) -> None:
    await kafka.create_topics(settings)
    event = CARDS.event_schema
    key, _ = schema_store.entry(event, "ingest")
    other_key, other = schema_store.entry(CARDS.label_schema, "stranger")
    forged = [
        (key, b"\x00garbage"),
        (key, other),  # another schema under the event schema's fingerprint
        (other_key, b"\xc3\x01" + b"\xff" * (catalog.topic("schemas").value_bytes - 2)),
    ]
    await produce(settings, "schemas", [v for _, v in forged], [k for k, _ in forged])
    ingest = _run(settings, "ingest", services, EXAMPLES[0])
    assert ingest.metric("tideline_schema_store_refused_total", reason="wrong_key") == 1
    assert ingest.metric("tideline_schema_store_refused_total", reason="undecodable") == 2

    # its own schema registered after the forgeries, and nothing they hold taken
    await produce(settings, "events.raw", [serde.encode(event, _event(CARDS, "e-1"))], [b"c-7"])
    found = await collect(settings, "events", 1)
    assert serde.Decoder([event]).decode_as(event, found[0].value)["event_id"] == "e-1"
    store = await _stored(settings)
    assert [s.fingerprint for s in store.stored(event.name)] == [event.fingerprint]
    assert ingest.alive()
