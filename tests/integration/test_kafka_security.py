"""Every Kafka client connects to a secured cluster from the TIDELINE_KAFKA_* settings:
mutual TLS, SASL PLAIN and SCRAM, in the clear and over TLS, on a real broker with those
listeners; a client without the right credentials is refused and writes nothing."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError
from tideline import kafka
from tideline.errors import StackError
from tideline.settings import Settings

from ops.launcher import free_port
from ops.stack.kafka_broker import KafkaBroker, cluster_id
from ops.stack.process import wait_until

from .pki import KEYSTORE_PASSWORD
from .pki import make as make_pki

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice-secret"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class Secured:
    plain: Settings  # the PLAINTEXT listener, to look at what was written
    ports: dict[str, int]
    pki: Path

    def settings(self, protocol: str, **options: Any) -> Settings:
        """A client of the `protocol` listener; file options are names in the PKI folder."""
        files = {k: self.pki / v for k, v in options.items() if k.startswith("kafka_ssl_")}
        return Settings(
            home=self.plain.home,
            topic_prefix=self.plain.topic_prefix,
            kafka_bootstrap=f"localhost:{self.ports[protocol]}",
            kafka_security_protocol=protocol,
            **(options | files),
        )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    home = tmp_path_factory.mktemp("secured-kafka")
    pki = make_pki(home / "pki")
    ports = {name: free_port() for name in ("SSL", "SASL_PLAINTEXT", "SASL_SSL")}
    plain = Settings(
        home=home,
        kafka_bootstrap=f"localhost:{free_port()}",
        kafka_controller_port=free_port(),
        topic_prefix="secured.",
    )
    broker = KafkaBroker(
        plain,
        listeners=ports,
        config=[
            f"ssl.keystore.type=PKCS12\nssl.keystore.location={pki / 'server.p12'}",
            f"ssl.keystore.password={KEYSTORE_PASSWORD}",
            f"ssl.truststore.type=PEM\nssl.truststore.location={pki / 'ca.pem'}",
            "listener.name.ssl.ssl.client.auth=required",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common"
            f'.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";',
            f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={SCRAM_MODULE}",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={SCRAM_MODULE}",
        ],
        scram=[f"SCRAM-SHA-{bits}=[name={USER},password={PASSWORD}]" for bits in ("256", "512")],
    )
    broker.write_config()
    broker.ensure_formatted(cluster_id())
    wait_until(broker.healthy, broker.process, timeout=120, child=broker.launch())
    try:
        yield Secured(plain, ports, pki)
    finally:
        broker.process.stop()


SASL = {"kafka_sasl_username": USER, "kafka_sasl_password": PASSWORD}
CLIENTS: dict[str, tuple[str, dict[str, str]]] = {
    "mutual-tls": (
        "SSL",
        {
            "kafka_ssl_cafile": "ca.pem",
            "kafka_ssl_certfile": "client.pem",
            "kafka_ssl_keyfile": "client.key",
        },
    ),
    "plain": ("SASL_PLAINTEXT", {**SASL, "kafka_sasl_mechanism": "PLAIN"}),
    "scram-256": ("SASL_PLAINTEXT", {**SASL, "kafka_sasl_mechanism": "SCRAM-SHA-256"}),
    "scram-512-tls": (
        "SASL_SSL",
        {**SASL, "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_ssl_cafile": "ca.pem"},
    ),
}
# each a way to be refused: a listener and what differs from a right client of it
REFUSED: dict[str, tuple[str, dict[str, str | None]]] = {
    "wrong password": ("SASL_SSL", {"kafka_sasl_password": "wrong"}),
    "unknown user": ("SASL_PLAINTEXT", {"kafka_sasl_username": "mallory"}),
    "no client certificate": ("SSL", {"kafka_ssl_certfile": None, "kafka_ssl_keyfile": None}),
}


async def _end_offset(settings: Settings, topic: str) -> int:
    consumer = kafka.consumer(settings, group_id=None)
    async with kafka.started(consumer):
        partition = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([partition]))[partition])


async def _round_trip(settings: Settings, topic: str) -> list[bytes | None]:
    """Create `topic`, write two records and read them back, all over `settings`."""
    async with kafka.admin_session(settings) as admin:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        for value in (b"one", b"two"):
            await producer.send_and_wait(topic, value)
    consumer = kafka.consumer(settings, topic, group_id=f"{topic}-readers")
    async with kafka.started(consumer):
        batches = await consumer.getmany(timeout_ms=30_000, max_records=2)
        return [m.value for ms in batches.values() for m in ms]


@pytest.mark.parametrize("name", CLIENTS)
async def test_every_client_connects_with_the_settings(secured: Secured, name: str) -> None:
    protocol, options = CLIENTS[name]
    topic = f"secured.{name}"
    assert await _round_trip(secured.settings(protocol, **options), topic) == [b"one", b"two"]
    assert await _end_offset(secured.plain, topic) == 2


def test_the_cli_connects_from_the_environment(secured: Secured) -> None:
    """The variables a user sets are what `tideline topics create` connects with."""
    env = {
        **os.environ,
        "TIDELINE_KAFKA_BOOTSTRAP": f"localhost:{secured.ports['SASL_SSL']}",
        "TIDELINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TIDELINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TIDELINE_KAFKA_SASL_USERNAME": USER,
        "TIDELINE_KAFKA_SASL_PASSWORD": PASSWORD,
        "TIDELINE_KAFKA_SSL_CAFILE": str(secured.pki / "ca.pem"),
        "TIDELINE_TOPIC_PREFIX": "secured-cli.",
        "TIDELINE_HOME": str(secured.plain.home),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "topics", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "secured-cli.events.raw" in done.stdout + done.stderr


async def _written_by(settings: Settings, topic: str) -> None:
    producer = kafka.producer(settings, request_timeout_ms=5000)
    try:  # stopped even when it never started: a refused start leaves its client open
        await producer.start()
        await producer.send_and_wait(topic, b"should not be here")
    finally:
        await producer.stop()


@pytest.mark.parametrize("why", [*REFUSED, "plaintext to the TLS listener"])
async def test_a_client_without_the_right_credentials_writes_nothing(
    secured: Secured, why: str
) -> None:
    topic = "secured.refusals"
    async with kafka.admin_session(secured.plain) as admin:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, 1, 1)])
    before = await _end_offset(secured.plain, topic)
    if why in REFUSED:
        protocol, changes = REFUSED[why]
        right = next(options for p, options in CLIENTS.values() if p == protocol)
        options: dict[str, str | None] = {**right, **changes}
        settings = secured.settings(protocol, **{k: v for k, v in options.items() if v})
    else:
        tls = secured.settings("SASL_SSL", **CLIENTS["scram-512-tls"][1])
        settings = Settings(home=tls.home, kafka_bootstrap=tls.kafka_bootstrap)
    with pytest.raises(KafkaError):
        await _written_by(settings, topic)
    assert await _end_offset(secured.plain, topic) == before, why


def test_settings_that_cannot_connect_say_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TIDELINE_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="needs TIDELINE_KAFKA_SSL_CERTFILE"):
        Settings(kafka_ssl_keyfile=tmp_path / "client.key")
    missing = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "no-ca.pem")
    with pytest.raises(StackError, match="TLS settings cannot be used"):
        kafka.connection(missing)
