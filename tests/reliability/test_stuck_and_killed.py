"""A worker frozen past its session timeout (SIGSTOP), then woken; ingest killed (kill -9)
mid-stream and restarted: nothing lost, nothing written twice, and what the feature
store wrote equals a recompute (a woken worker's late writes change nothing)."""

import asyncio
import os
import signal

import pytest
from tideline import catalog, kafka, project
from tideline.models import ModelClient
from tideline.settings import Settings

from ops import control

from ..integration.services.running import Service, as_raw, collect, produce, wait_committed
from ..integration.services.test_featurestore_service import _assert_no_skew, _encode, _stream
from ..integration.services.test_trainer_registry import _stack
from ..projects import EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CARDS = project.load(EXAMPLES[0])


def _start(name: str, settings: Settings, running: list[Service]) -> Service:
    svc = Service(name, settings)
    svc.start()
    running.append(svc)
    svc.wait_polling()
    return svc


async def _paced(
    settings: Settings,
    topic: str,
    chunks: list[tuple[list[bytes], list[bytes | None]]],
    halfway: asyncio.Event | None = None,
) -> None:
    """Chunk by chunk; if `halfway` is given, the second half waits until it is set."""
    for i, (values, keys) in enumerate(chunks):
        if halfway is not None and i == len(chunks) // 2:
            await halfway.wait()
        await produce(settings, topic, values, keys)
        await asyncio.sleep(0.2)


async def test_a_frozen_worker_is_replaced_and_its_late_writes_change_nothing(
    settings: Settings, running: list[Service]
) -> None:
    await kafka.create_topics(settings)
    raw = _stream(CARDS, 3000, seed=41)
    chunks = [_encode(CARDS, raw[i : i + 100]) for i in range(0, len(raw), 100)]
    stuck, other = await asyncio.to_thread(
        lambda: (
            _start("featurestore", settings, running),
            _start("featurestore", settings, running),
        )
    )
    first = [(c["values"], c["keys"]) for c in chunks[:10]]
    await _paced(settings, "events", first)
    await asyncio.to_thread(stuck.wait_for, "tideline_featurestore_events_total", 1)
    os.kill(stuck.pid, signal.SIGSTOP)  # no heartbeat: the group drops it after its timeout
    try:
        await _paced(settings, "events", [(c["values"], c["keys"]) for c in chunks[10:20]])
        await wait_committed(settings, "featurestore", ["events"])  # the other took it all
    finally:
        os.kill(stuck.pid, signal.SIGCONT)  # it wakes mid-batch, finds itself out, rejoins
    await _paced(settings, "events", [(c["values"], c["keys"]) for c in chunks[20:]])
    await wait_committed(settings, "featurestore", ["events"])
    assert await _assert_no_skew(settings, CARDS) == len(raw)
    for svc in (stuck, other):
        assert svc.alive()
        assert svc.stop() == 0


async def test_ingest_killed_mid_stream_loses_nothing_and_writes_nothing_twice(
    settings: Settings, running: list[Service]
) -> None:
    await kafka.create_topics(settings)
    raw = _stream(CARDS, 3000, seed=43)
    chunks = [as_raw(raw[i : i + 100]) for i in range(0, len(raw), 100)]
    first = await asyncio.to_thread(_start, "ingest", settings, running)
    sending = asyncio.create_task(_paced(settings, "events.raw", chunks))
    await asyncio.to_thread(
        first.wait_for, "tideline_ingest_records_out_total", 500, topic="events"
    )
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not sending.done(), "the kill should land mid-stream"
    second = await asyncio.to_thread(_start, "ingest", settings, running)
    await sending
    await wait_committed(settings, "ingest", ["events.raw"])
    written = catalog.topic("events").bind(settings, CARDS.derived_schemas)
    found = [
        written.decode(m.value)["event_id"] for m in await collect(settings, "events", len(raw))
    ]
    assert len(found) == len(set(found)), f"{len(found) - len(set(found))} events written twice"
    assert set(found) == {e["event_id"] for e in raw}
    assert second.stop() == 0


async def test_the_trainer_killed_mid_run_redoes_it_once(
    settings: Settings, running: list[Service]
) -> None:
    await _stack(settings, running, rows=2500)
    (trainer,) = [s for s in running if s.name == "trainer"]
    order = control.TrainingOrder(CARDS.name, "test")
    asked = asyncio.create_task(control.train(settings, order, timeout_s=180))
    await asyncio.to_thread(trainer.wait_for, "tideline_trainer_running", 1, model=CARDS.name)
    assert trainer.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-run: nothing published yet
    await asyncio.to_thread(_start, "trainer", settings, running)
    outcome = await asked
    assert outcome.decision is not None
    assert outcome.decision["action"] == "promoted"
    registry = await ModelClient(settings).registry()
    assert [v["version"] for v in registry.listing()] == [1]  # one run, one candidate
