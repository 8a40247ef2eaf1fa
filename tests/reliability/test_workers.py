"""Two ingest and two feature-store workers, rebalanced again and again (workers join, stop
and are killed) while repeats and a backfill of old events stream in: no event twice on
`events`, every one once, and the features and Redis equal a recompute."""

import asyncio
import random
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tideline import catalog, kafka, project
from tideline.settings import Settings

from ops import synthetic

from ..integration.services.running import Service, as_raw, collect, produce, wait_committed
from ..integration.services.test_featurestore_service import _assert_no_skew
from ..projects import EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CARDS = project.load(EXAMPLES[0])


def _events(count: int, seed: int) -> list[dict[str, Any]]:
    """Today's events, and as many a backfill from three weeks ago."""
    generator = synthetic.Generator(CARDS, entities=60, seed=seed)
    now = datetime.now(UTC) - timedelta(minutes=20)
    backfill = now - timedelta(days=21)
    recent = list(generator.stream(now, count // 2, timedelta(milliseconds=300)))
    old = list(generator.stream(backfill, count - count // 2, timedelta(milliseconds=300)))
    return [e for pair in zip(recent, old, strict=False) for e in pair]


async def test_rebalanced_workers_write_each_event_once_and_agree_with_a_recompute(
    settings: Settings, running: list[Service]
) -> None:
    await kafka.create_topics(settings)
    events = _events(3000, seed=31)
    rng = random.Random(31)
    thirds = [events[i * 1000 : (i + 1) * 1000] for i in range(3)]

    def start(name: str) -> Service:
        svc = Service(name, settings)
        svc.start()
        running.append(svc)
        svc.wait_polling()
        return svc

    joined = [asyncio.Event(), asyncio.Event()]  # each later third waits for new workers

    async def send() -> None:
        for third in range(3):
            if third:
                await joined[third - 1].wait()
            repeats = rng.sample(events[: (third + 1) * 1000], 300)  # of this third and before
            mixed = thirds[third] + repeats
            rng.shuffle(mixed)
            for i in range(0, len(mixed), 100):
                values, keys = as_raw(mixed[i : i + 100])
                await produce(settings, "events.raw", values, keys)
                await asyncio.sleep(0.25)  # a stream, which the rebalances below land in

    def wait(svc: Service, sample: str, at_least: float) -> "asyncio.Future[float]":
        return asyncio.ensure_future(asyncio.to_thread(svc.wait_for, sample, at_least))

    ingest_a, store_a = await asyncio.to_thread(lambda: (start("ingest"), start("featurestore")))
    sending = asyncio.create_task(send())
    await wait(ingest_a, "tideline_ingest_records_in_total", 600)
    ingest_b, store_b = await asyncio.to_thread(lambda: (start("ingest"), start("featurestore")))
    joined[0].set()
    await wait(ingest_b, "tideline_ingest_records_in_total", 1)  # the group has rebalanced
    assert ingest_a.stop() == 0  # a clean leave: its partitions move at once
    assert store_a.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: moved after the timeout
    ingest_c, store_c = await asyncio.to_thread(lambda: (start("ingest"), start("featurestore")))
    joined[1].set()
    await wait(ingest_c, "tideline_ingest_records_in_total", 1)
    await sending

    await wait_committed(settings, "ingest", ["events.raw"])
    await wait_committed(settings, "featurestore", ["events"])
    written = catalog.topic("events").bind(settings, CARDS.derived_schemas)
    found = [written.decode(m.value)["event_id"] for m in await collect(settings, "events", 3000)]
    assert len(found) == len(set(found)), f"{len(found) - len(set(found))} events written twice"
    assert set(found) == {e["event_id"] for e in events}
    await _assert_no_skew(settings, CARDS)
    for svc in (ingest_b, ingest_c, store_b, store_c):
        assert svc.alive()
        assert svc.stop() == 0
