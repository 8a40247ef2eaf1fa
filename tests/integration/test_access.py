"""The session's stack is secured as `tideline stack up` makes it: each principal may do
what the catalog grants it and nothing else, the broker says so (TopicAuthorizationFailed)
and the topic's end offset does not move; a client without the right credentials, or
speaking plaintext to the TLS listener, is refused."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import confluent_kafka
import pytest
import redis
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from tideline import access, catalog, kafka
from tideline.settings import Settings

from ops import launcher
from ops.stack import security

from .services.running import collect, produce

pytestmark = pytest.mark.integration


def _as(settings: Settings, principal: str) -> Settings:
    secrets = security.secured(settings.home)
    assert secrets is not None, (
        f"the session's stack in {settings.home} is plaintext: the suite runs on a secured"
        " one, as `tideline stack up` makes it (without --insecure)"
    )
    return secrets.settings(principal, settings)


async def _end_offsets(settings: Settings, name: str) -> dict[int, int]:
    """Each partition's end offset of topic `name`, read as the stack's owner."""
    topic = catalog.topic(name).full_name(settings)
    consumer = kafka.consumer(settings, group_id=None)
    async with kafka.started(consumer):
        parts = [TopicPartition(topic, p) for p in await kafka.partitions(settings, topic)]
        return {tp.partition: int(o) for tp, o in (await consumer.end_offsets(parts)).items()}


async def _write(settings: Settings, name: str, idempotent: bool = True) -> None:
    """One record to topic `name` as `settings`' principal. Without idempotence, a
    principal that may write nothing still reaches the topic's own check (an idempotent
    producer asks the cluster for a producer id first)."""
    options = {} if idempotent else {"enable_idempotence": False, "acks": 1}
    producer = kafka.producer(settings, request_timeout_ms=10_000, **options)
    try:
        await producer.start()
        await producer.send_and_wait(catalog.topic(name).full_name(settings), b"forged", b"k")
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("producer", "models.updated"),
        ("producer", "models.artifacts"),
        ("producer", "events"),
        ("serving", "models.updated"),
        ("trainer", "models.updated"),
        ("ops", "models.updated"),
        ("monitor", "models.candidates"),
    ],
)
async def test_a_principal_cannot_write_a_topic_the_catalog_does_not_grant_it(
    settings: Settings, principal: str, topic: str
) -> None:
    await kafka.create_topics(settings)
    before = await _end_offsets(settings, topic)
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(_as(settings, principal), topic)
    assert await _end_offsets(settings, topic) == before


async def test_the_subscriber_reads_the_models_and_cannot_write_anything(
    settings: Settings,
) -> None:
    await kafka.create_topics(settings)
    subscriber = _as(settings, "subscriber")
    for name in catalog.topics():
        before = await _end_offsets(settings, name)
        with pytest.raises(TopicAuthorizationFailedError):
            await _write(subscriber, name, idempotent=False)
        assert await _end_offsets(settings, name) == before, name
    await produce(settings, "models.updated", [b"announced"], [b"cards:1"])
    (found,) = await collect(subscriber, "models.updated", 1, group=None)
    assert found.value == b"announced"
    with pytest.raises(TopicAuthorizationFailedError):  # and reads no features
        await collect(subscriber, "features", 1, group=None)


async def test_the_producer_writes_events_and_labels_and_reads_nothing(
    settings: Settings,
) -> None:
    await kafka.create_topics(settings)
    producer = _as(settings, "producer")
    for name in ("events.raw", "labels.raw"):
        await _write(producer, name)
        (found,) = await collect(settings, name, 1)
        assert found.value == b"forged"
    with pytest.raises(TopicAuthorizationFailedError):
        await collect(producer, "events.raw", 1, group=None)


async def test_groups_are_each_principal_s_own(settings: Settings) -> None:
    await kafka.create_topics(settings)
    await produce(settings, "models.updated", [b"announced"], [b"cards:1"])
    subscriber = _as(settings, "subscriber")
    own = f"{settings.topic_prefix}subscriber.scorer"
    (found,) = await collect(subscriber, "models.updated", 1, group=own)
    assert found.value == b"announced"
    with pytest.raises(KafkaError):  # GroupAuthorizationFailed: serving's group is not its
        await collect(subscriber, "models.updated", 1, group=f"{settings.topic_prefix}serving.x")


@pytest.mark.parametrize("how", ["no credentials", "wrong password", "unknown user", "no CA"])
async def test_a_client_without_the_right_credentials_is_refused_and_writes_nothing(
    settings: Settings, how: str
) -> None:
    await kafka.create_topics(settings)
    right = _as(settings, "producer")
    changes: dict[str, dict[str, Any]] = {
        "no credentials": {"kafka_security_protocol": "PLAINTEXT"},  # plaintext to TLS
        "wrong password": {"kafka_sasl_password": "guessed"},
        "unknown user": {"kafka_sasl_username": "mallory"},
        "no CA": {"kafka_ssl_cafile": None},  # the system's CAs do not know the stack's
    }
    stranger = Settings.model_validate(right.model_dump() | changes[how])
    before = await _end_offsets(settings, "events.raw")
    with pytest.raises(KafkaError):
        await _write(stranger, "events.raw")
    assert await _end_offsets(settings, "events.raw") == before


def test_credentials_print_what_a_client_connects_with(settings: Settings) -> None:
    def credentials(principal: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops.cli", "stack", "credentials", principal],
            env=launcher.environment(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = credentials("producer")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    producer = _as(settings, "producer")
    assert lines["TIDELINE_KAFKA_BOOTSTRAP"] == settings.kafka_bootstrap
    assert lines["TIDELINE_KAFKA_SASL_USERNAME"] == "producer"
    assert producer.kafka_sasl_password is not None
    assert lines["TIDELINE_KAFKA_SASL_PASSWORD"] == producer.kafka_sasl_password.get_secret_value()
    unknown = credentials("mallory")
    assert unknown.returncode == 1
    assert "no credentials for principal 'mallory'" in unknown.stdout + unknown.stderr


def test_redis_lets_the_feature_store_write_serving_read_and_no_one_else_in(
    settings: Settings,
) -> None:
    def client(principal: str | None) -> redis.Redis:
        who = settings if principal is None else _as(settings, principal)
        credentials = who.redis_credentials if principal is not None else {}
        return redis.Redis.from_url(settings.redis_url, socket_timeout=5, **credentials)

    key = f"{settings.topic_prefix}access-check"
    writer, reader = client("featurestore"), client("serving")
    try:
        assert writer.set(key, b"written") is True
        assert reader.get(key) == b"written"
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.set(key, b"overwritten")
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.delete(key)
        assert reader.get(key) == b"written"
        with pytest.raises(redis.exceptions.AuthenticationError):
            client(None).get(key)  # no user: the default one is off
        assert _as(settings, "producer").redis_username is None  # no Redis user at all
    finally:
        writer.delete(key)
        writer.close()
        reader.close()


def _librdkafka(path: Path) -> dict[str, str]:
    """A librdkafka client's configuration, read from the file kcat -F would read."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _rdkafka_send(path: Path, topic: str, key: bytes, value: bytes) -> str | None:
    """One record, as a librdkafka producer sends it; the broker's error, if any."""
    producer = confluent_kafka.Producer(_librdkafka(path))
    errors: list[str] = []
    producer.produce(
        topic, value, key, on_delivery=lambda e, _: errors.extend([str(e)] if e else [])
    )
    assert producer.flush(60) == 0, "undelivered"
    return errors[0] if errors else None


def _rdkafka_read(path: Path, topic: str, group: str) -> bytes | None:
    consumer = confluent_kafka.Consumer(
        _librdkafka(path) | {"group.id": group, "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            found = consumer.poll(1.0)
            if found is not None and found.error() is None:
                value: bytes | None = found.value()
                return value
        return None
    finally:
        consumer.close()


async def test_each_role_connects_with_librdkafka_and_java_s_console_producer(
    settings: Settings, tmp_path: Path
) -> None:
    """As docs/security.md shows, with the files `tideline stack credentials` prints:
    librdkafka's (kcat's, confluent-kafka's) and a Java client's."""
    await kafka.create_topics(settings)
    secrets = security.secured(settings.home)
    assert secrets is not None
    files = {}
    forms: dict[str, Literal["librdkafka", "java"]] = {
        "producer": "librdkafka",
        "subscriber": "librdkafka",
        "ops": "java",
    }
    for role, form in forms.items():
        files[role] = tmp_path / f"{role}.conf"
        lines = security.client_config(secrets, role, settings.kafka_bootstrap, form)
        files[role].write_text("\n".join(lines) + "\n")
    raw, updates = (catalog.topic(n).full_name(settings) for n in ("events.raw", "models.updated"))

    sent = await asyncio.to_thread(_rdkafka_send, files["producer"], raw, b"c-1", b"an event")
    assert sent is None
    (found,) = await collect(settings, "events.raw", 1)
    assert (found.key, found.value) == (b"c-1", b"an event")

    await produce(settings, "models.updated", [b"announced"], [b"cards:1"])
    group = f"{settings.topic_prefix}subscriber.rdkafka"
    assert await asyncio.to_thread(_rdkafka_read, files["subscriber"], updates, group) == (
        b"announced"
    )
    before = await _end_offsets(settings, "models.updated")
    forged = await asyncio.to_thread(_rdkafka_send, files["subscriber"], updates, b"k", b"forged")
    assert forged is not None
    assert "TOPIC_AUTHORIZATION_FAILED" in forged
    assert await _end_offsets(settings, "models.updated") == before

    commands = catalog.topic("registry.commands").full_name(settings)
    tool = ["stack", "kafka", "console-producer", "--bootstrap-server", settings.kafka_bootstrap]
    config = ["--topic", commands, "--producer.config", str(files["ops"])]
    java = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ops.cli", *tool, *config],
        input="an order\n",
        env=launcher.environment(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert java.returncode == 0, java.stderr
    (order,) = await collect(settings, "registry.commands", 1)
    assert order.value == b"an order"


async def test_a_grant_the_catalog_no_longer_makes_is_revoked(settings: Settings) -> None:
    await kafka.create_topics(settings)
    subscriber = _as(settings, "subscriber")
    extra = access.Acl(
        "User:subscriber",
        access.Resource.TOPIC,
        catalog.topic("models.updated").full_name(settings),
        access.Pattern.LITERAL,
        access.Operation.WRITE,
    )
    async with kafka.admin_session(settings) as client:  # as an older catalog granted it
        response = await client._send_request(access._CreateAcls([extra]))
        assert [code for code, _ in response.creation_responses] == [0]
    await _write(subscriber, "models.updated", idempotent=False)  # allowed, for now
    await kafka.create_topics(settings)  # the catalog again: no subscriber writes
    before = await _end_offsets(settings, "models.updated")
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(subscriber, "models.updated", idempotent=False)
    assert await _end_offsets(settings, "models.updated") == before
