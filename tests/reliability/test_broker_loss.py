"""A broker killed mid-stream (kill -9) on a three-broker cluster with replication factor 3:
every acknowledged record is on its topic once, ingest, the feature store and serving
carry on without a restart, and features, Redis and predictions equal a recompute of what
came in (what a run without the kill gives)."""

import asyncio
import json
from collections.abc import Callable

import pytest
from tideline import catalog, kafka, project
from tideline.settings import Settings

from ops import control

from ..integration.services.running import Service, assert_scored, collect, wait_committed
from ..integration.services.test_featurestore_service import (
    _assert_no_skew,
    _offline,
    _read_events,
    _stream,
)
from ..integration.services.test_trainer_registry import _stack
from ..projects import EXAMPLES
from .conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CARDS = project.load(EXAMPLES[0])


async def _leader(settings: Settings, topic: str) -> int:
    async with kafka.admin_session(settings) as client:
        (described,) = await client.describe_topics([topic])
    return int(next(p["leader"] for p in described["partitions"] if p["partition"] == 0))


def _acknowledge(into: list[str], event_id: str) -> Callable[["asyncio.Future[object]"], None]:
    def done(sent: "asyncio.Future[object]") -> None:
        if sent.exception() is None:
            into.append(event_id)

    return done


async def test_a_broker_killed_mid_stream_loses_nothing_acknowledged(
    cluster: Cluster, on_cluster: Settings, running: list[Service]
) -> None:
    settings = on_cluster
    await _stack(settings, running, rows=1500)  # a champion to score with, then no trainer
    first = await control.train(settings, control.TrainingOrder(CARDS.name, "test"), 120)
    assert first.decision is not None
    assert first.decision["action"] == "promoted"
    for svc in list(running):
        assert svc.stop() == 0
    raw = catalog.topic("events.raw").full_name(settings)
    async with kafka.admin_session(settings) as client:
        (described,) = await client.describe_topics([raw])
    assert all(len(p["replicas"]) == 3 for p in described["partitions"])

    services = [Service(name, settings) for name in ("ingest", "featurestore", "serving")]
    services[2].env["TIDELINE_SERVING_HTTP_PORT"] = "0"
    for svc in services:
        svc.start()
        running.append(svc)
    pids = [svc.pid for svc in services]
    events = _stream(CARDS, 3000, seed=29)
    acknowledged: list[str] = []
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        for i, e in enumerate(events):
            body = {"event_id": e["event_id"], "event_time": e["event_time"].isoformat()}
            sent = await producer.send(
                raw, json.dumps(body | e["payload"]).encode(), key=e["entity_id"].encode()
            )
            sent.add_done_callback(_acknowledge(acknowledged, e["event_id"]))
            if i == len(events) // 3:
                await producer.flush()
                await asyncio.to_thread(
                    services[1].wait_for,
                    "tideline_featurestore_events_total",
                    len(acknowledged) // 2,
                )
                victim = await _leader(settings, raw)
                assert cluster.brokers[victim - 1].process.kill()
                # admin requests go to a random broker the metadata lists, the lost one too
                # until the controller fences it: each retries elsewhere (a service starting
                # now looks up its topics this way)
                for _ in range(20):
                    assert raw in await kafka.existing_topics(settings)
            if i % 100 == 0:
                await asyncio.sleep(0.05)  # a stream, not a burst
        await producer.flush()
    assert len(acknowledged) == len(events)

    await asyncio.to_thread(
        services[0].wait_for, "tideline_ingest_records_out_total", len(acknowledged), 180
    )
    await asyncio.to_thread(
        services[1].wait_for, "tideline_featurestore_events_total", len(acknowledged), 180
    )
    written = catalog.topic("events").bind(settings, CARDS.derived_schemas)
    found = [
        written.decode(m.value)["event_id"] for m in await collect(settings, "events", len(events))
    ]
    assert sorted(found) == sorted(acknowledged)  # each once
    await _assert_no_skew(settings, CARDS)
    await wait_committed(settings, "serving", ["features"])
    # the champion's scores, as of a recompute of the vectors: what a run without the kill serves
    offline = _offline(CARDS, await _read_events(settings, CARDS))
    await assert_scored(settings, {e: offline[e] for e in acknowledged if offline[e]}, 1)
    assert [svc.pid for svc in services] == pids
    assert all(svc.alive() for svc in services)
    for svc in services:
        assert svc.stop() == 0
    await asyncio.to_thread(cluster.up)  # the victim back, for the tests after this one
