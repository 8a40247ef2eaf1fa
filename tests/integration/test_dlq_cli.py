"""`tideline dlq tail` and `tideline dlq replay` as an operator uses them: look at what ingest
refused, fix the cause, resend, and the records come through; nothing resent twice by one run."""

import json
import subprocess
import sys

import pytest
from tideline import catalog, dlq, kafka, project
from tideline.settings import Settings

from ops import deadletters, launcher

from ..projects import EXAMPLES
from .services.running import Service, as_raw, collect, produce
from .services.test_featurestore_service import _stream

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])


def _cli(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "dlq", *args],
        env=launcher.environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_refused_records_are_looked_at_then_resent_once_fixed(
    settings: Settings, running: list[Service]
) -> None:
    await kafka.create_topics(settings)
    raw, _ = as_raw(_stream(CARDS, 40, seed=5))
    limit = sorted(len(r) for r in raw)[len(raw) // 2]  # half the events are over it
    too_big = [r for r in raw if len(r) > limit]
    strict = Service("ingest", settings, EXAMPLES[0])
    strict.env = strict.env | {"TIDELINE_INGEST_MAX_RECORD_BYTES": str(limit)}
    strict.start()
    running.append(strict)
    await produce(settings, "events.raw", [*raw, b"\x00\xffnot an event"])
    strict.wait_for("tideline_dead_letters_total", len(too_big) + 1, service="ingest")
    assert strict.stop() == 0

    tailed = _cli(settings, "tail", "--from-beginning", "--limit", "3", "--stage", "size")
    lines = tailed.splitlines()
    assert len(lines) == 3, tailed
    assert all("RecordTooLarge" in line for line in lines), tailed
    assert all("bytes)" in line for line in lines)  # the start of each record's bytes
    as_json = _cli(
        settings, "tail", "--from-beginning", "--limit", "1", "--json", "--stage", "decode"
    )
    assert json.loads(as_json)["record"]["value"] == (b"\x00\xffnot an event").hex()

    counted = _cli(settings, "replay", "--topic", "events.raw", "--stage", "size")
    assert f"would resend (--yes to do it): {len(too_big)}" in counted, counted

    fixed = Service("ingest", settings, EXAMPLES[0])  # the default limit takes them all
    fixed.start()
    running.append(fixed)
    resent = _cli(settings, "replay", "--topic", "events.raw", "--stage", "size", "--yes")
    assert f"resent: {len(too_big)}" in resent, resent
    fixed.wait_for("tideline_ingest_records_out_total", len(too_big), topic="events")
    events = catalog.topic("events").bind(settings, CARDS.derived_schemas)
    found = [
        events.decode(m.value)["event_id"] for m in await collect(settings, "events", len(raw))
    ]
    assert sorted(found) == sorted(json.loads(r)["event_id"] for r in raw)  # each once
    assert fixed.metric("tideline_dead_letters_total", service="ingest", stage="size") == 0
    assert fixed.stop() == 0


async def test_a_letter_cut_to_fit_is_counted_not_resent(settings: Settings) -> None:
    await kafka.create_topics(settings)
    source = dlq.Source(
        catalog.topic("events.raw").full_name(settings), 0, 1, None, b"k", b"x" * 5000
    )
    refused = dlq.RejectionError("size", "RecordTooLarge", "too big")
    key, value, headers = dlq.dead_letter(source, refused, "ingest", budget=1000)
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        await producer.send_and_wait(dlq.TOPIC.full_name(settings), value, key=key, headers=headers)
    outcome = await deadletters.replay(
        settings, deadletters.Select(topic="events.raw", prefix=settings.topic_prefix), send=True
    )
    assert (outcome.sent, outcome.truncated) == (0, 1)
