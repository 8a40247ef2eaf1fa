"""A single-node Apache Kafka broker in KRaft mode, assembled from Maven Central jars.

Kafka 4.1 is pinned: aiokafka 0.14 and faust-streaming 0.15 speak its protocol
versions (4.0 dropped the old ones, KIP-896), and it is the newest line we test.
"""

import asyncio
import base64
import shutil
import subprocess
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from tideline.errors import StackError
from tideline.settings import Settings

from ops.stack import maven
from ops.stack.process import ManagedProcess, port_open, wait_until

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # Kafka 4.x logs through slf4j 1.7 and ships no backend

ARTIFACTS = [
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
]

LOG4J2 = """status = warn
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""

JVM_OPTIONS = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]


def cluster_id() -> str:
    """A new cluster id: a url-safe base64 uuid without padding, as Kafka's own. Never one
    that starts with '-', which the storage tool would read as an option (one in 64
    would; Kafka's `Uuid.randomUuid` draws again for the same reason)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


class KafkaBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host, self.port = settings.kafka_host_port
        self.controller_port = settings.kafka_controller_port
        self.lib = settings.cache / f"kafka-{KAFKA_VERSION}"
        self.data = settings.home / "kafka-data"
        self.config = settings.home / "kafka" / "server.properties"
        self.process = ManagedProcess(
            name="kafka",
            run_dir=settings.home / "run",
            log=settings.home / "logs" / "kafka.log",
            marker=str(self.config),
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ensure_jars(self) -> bool:
        """Fetch the broker's jars once; True if they were downloaded now."""
        return maven.fetch(ARTIFACTS, self.lib)

    def _java(self, main: str, *args: str, jvm: list[str] | None = None) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError(
                "Java 17+ is needed to run the Kafka broker: apt-get install -y default-jre"
            )
        return [java, *(jvm or []), "-cp", maven.classpath(self.lib), main, *args]

    def write_config(self) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        (self.config.parent / "log4j2.properties").write_text(LOG4J2)
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "inter.broker.listener.name=PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # Topics come from the catalog, with its partitions and policies; a
                    # client asking for a missing one must hear so, not get a default.
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )

    def ensure_formatted(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", cluster_id(), "-c", str(self.config)
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        self.write_config()
        self.ensure_formatted()
        log4j = self.config.parent / "log4j2.properties"
        argv = self._java(
            "kafka.Kafka",
            str(self.config),
            jvm=[*JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}"],
        )
        child = self.process.start(argv, cwd=self.config.parent)
        wait_until(self.healthy, self.process, timeout=90, child=child)

    def ports_taken(self) -> list[int]:
        return [p for p in (self.port, self.controller_port) if port_open(self.host, p)]

    def healthy(self) -> bool:
        """True when a client's metadata request answers."""
        if not port_open(self.host, self.port):
            return False
        return asyncio.run(_metadata_answers(self.address))


async def _metadata_answers(bootstrap: str) -> bool:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.start()
        await client.list_topics()
    except (KafkaError, OSError):
        return False
    finally:
        await client.close()
    return True
