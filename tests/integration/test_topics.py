import asyncio
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from tideline import catalog, kafka, serde
from tideline.schemas import load
from tideline.settings import Settings

from ..examples import example
from .services.running import environment

pytestmark = pytest.mark.integration


async def test_topics_create_makes_every_catalog_topic_and_twice_is_harmless(
    settings: Settings,
) -> None:
    first = await kafka.create_topics(settings)
    assert {s.name for s in first} == {
        catalog.topic(n).full_name(settings) for n in catalog.topics()
    }
    assert all(s.created for s in first)
    second = await kafka.create_topics(settings)
    assert not any(s.created for s in second)
    assert {
        catalog.topic(n).full_name(settings) for n in catalog.topics()
    } <= await kafka.existing_topics(settings)


async def test_topics_have_catalog_partitions_and_cleanup_policy(settings: Settings) -> None:
    await kafka.create_topics(settings)
    async with kafka.admin_session(settings) as client:
        names = [catalog.topic(n).full_name(settings) for n in ("models.artifacts", "events")]
        described = {t["topic"]: t for t in await client.describe_topics(names)}
        configs = await client.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, catalog.topic("models.artifacts").full_name(settings)
                )
            ]
        )
    assert (
        len(described[catalog.topic("events").full_name(settings)]["partitions"])
        == catalog.topic("events").partitions
    )
    entries = {c[0]: c[1] for c in configs[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"


async def _configs(settings: Settings, name: str) -> dict[str, str]:
    async with kafka.admin_session(settings) as client:
        full = catalog.topic(name).full_name(settings)
        (response,) = await client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, full)]
        )
    return {c[0]: c[1] for c in response.resources[0][4]}


async def test_a_training_retention_is_made_and_applied_to_existing_topics(
    settings: Settings,
) -> None:
    await kafka.create_topics(settings)  # as made before the setting
    before = await _configs(settings, "features")
    assert int(before["retention.ms"]) == catalog.topic("features").retention_ms
    quarter = settings.model_copy(update={"training_retention": timedelta(days=90)})
    await kafka.create_topics(quarter)
    for name in ("features", "labels"):
        assert int((await _configs(settings, name))["retention.ms"]) == 90 * 86_400_000
    events = await _configs(settings, "events")
    assert int(events["retention.ms"]) == catalog.topic("events").retention_ms
    after = await _configs(settings, "features")
    kept = ("cleanup.policy", "min.insync.replicas", "max.message.bytes")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    other = quarter.model_copy(update={"topic_prefix": settings.topic_prefix + "new."})
    await kafka.create_topics(other)  # made with it
    assert int((await _configs(other, "labels"))["retention.ms"]) == 90 * 86_400_000


async def test_every_topic_receives_and_returns_a_record(settings: Settings) -> None:
    await kafka.create_topics(settings)
    sent = {}
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for topic in catalog.topics().values():
            schema = topic.schema()
            record = example(schema.parsed)
            await producer.send_and_wait(
                catalog.topic(topic.name).full_name(settings),
                serde.encode(schema, record),
                key=topic.name.encode(),
            )
            sent[catalog.topic(topic.name).full_name(settings)] = record
    finally:
        await producer.stop()

    decoder = serde.Decoder(load(t.value) for t in catalog.topics().values())
    consumer = kafka.consumer(settings, *sent, group_id=f"test-{uuid.uuid4().hex}")
    await consumer.start()
    received: dict[str, Any] = {}
    try:
        while len(received) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"nothing more arrived; missing {set(sent) - set(received)}"
            for tp, messages in batches.items():
                for message in messages:
                    received[tp.topic] = decoder.decode(message.value)[1]
    finally:
        await consumer.stop()
    assert received == sent


def _delete(settings: Settings, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "topics", "delete", *args],
        env=environment(settings),
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_topics_delete_takes_a_prefix_asks_first_and_leaves_the_others(
    settings: Settings,
) -> None:
    other = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix[:-1]}x."})
    asyncio.run(kafka.create_topics(settings))
    asyncio.run(kafka.create_topics(other))
    mine = {catalog.topic(n).full_name(settings) for n in catalog.topics()}

    declined = _delete(settings, settings.topic_prefix, answer="n\n")
    assert declined.returncode == 1
    assert f"delete these {len(mine)} topics and their records?" in declined.stdout
    assert mine <= asyncio.run(kafka.existing_topics(settings))

    done = _delete(settings, settings.topic_prefix, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"deleted {len(mine)} topics" in done.stdout
    left = asyncio.run(kafka.existing_topics(settings))
    assert not mine & left  # gone by the time the command returns
    assert {t.full_name(other) for t in catalog.topics().values()} <= left
    assert "no topic starts with" in _delete(settings, settings.topic_prefix).stdout

    refused = _delete(settings, "")
    assert refused.returncode == 1
    assert "a prefix is needed" in refused.stdout


async def test_reading_a_topic_that_does_not_exist_says_so(settings: Settings) -> None:
    from tideline.errors import StackError
    from tideline.models import ModelClient

    # no `topics create` for this test's prefix: a subscriber's first read
    with pytest.raises(StackError, match=r"models.updated does not exist: run `tideline topics"):
        await ModelClient(settings).registry()
