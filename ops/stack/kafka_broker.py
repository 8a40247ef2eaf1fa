"""Apache Kafka brokers in KRaft mode, assembled from Maven Central jars: one, or a
cluster of several on one machine (`tideline stack up --brokers 3`).

Each node is broker and controller. Node 1 listens where the settings say (9092,
controller 9093); node n on those ports plus 2(n - 1), with a config and a data
directory of its own. The cluster's size is fixed when its storage is formatted:
every node's controller quorum names all of them.

Kafka 4.1 is pinned: aiokafka 0.14 and faust-streaming 0.15 speak its protocol
versions (4.0 dropped the old ones, KIP-896), and it is the newest line we test.
"""

import asyncio
import base64
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from tideline.errors import StackError
from tideline.kafka import connection
from tideline.settings import Settings

from ops.stack import maven
from ops.stack.process import ManagedProcess, port_open, wait_until
from ops.stack.security import Secrets

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # Kafka 4.x logs through slf4j 1.7 and ships no backend

ARTIFACTS = [
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}",  # the console clients, consumer groups
    f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
]

# Kafka's command-line tools, run on the broker's jars: what Kafka's docs call
# bin/kafka-<name>.sh, with the same arguments.
TOOLS = {
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
}
TOOL_LOG4J2 = """status = warn
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %p %m%n
"""

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


def _ports(settings: Settings, node: int) -> tuple[int, int]:
    """Node `node`'s broker and controller ports."""
    step = 2 * (node - 1)
    return settings.kafka_host_port[1] + step, settings.kafka_controller_port + step


def formatted_nodes(settings: Settings) -> int:
    """How many nodes the stack home's cluster was formatted with (0: none yet)."""
    found = settings.home / "kafka" / "nodes"
    if found.is_file():
        return int(found.read_text())
    return 1 if (settings.home / "kafka-data" / "meta.properties").exists() else 0


def bootstrap(settings: Settings, nodes: int) -> str:
    """Every node's address: what clients should be given, so any one of them will do."""
    host = settings.kafka_host_port[0]
    return ",".join(f"{host}:{_ports(settings, n)[0]}" for n in range(1, nodes + 1))


class KafkaBroker:
    """One node. With `secrets`, its clients' port speaks SASL_SSL and it authorizes
    (`security.Secrets.broker_config`); without, PLAINTEXT. `listeners` adds client
    listeners, each named for its security protocol (SSL, SASL_PLAINTEXT, SASL_SSL) with
    its port; `config` adds lines to the node's configuration (keystores, JAAS); `scram`
    adds SCRAM credentials when the storage is formatted, as `--add-scram` takes them."""

    def __init__(
        self,
        settings: Settings,
        node: int = 1,
        nodes: int = 1,
        secrets: Secrets | None = None,
        listeners: Mapping[str, int] | None = None,
        config: Sequence[str] = (),
        scram: Sequence[str] = (),
    ) -> None:
        self.settings, self.node, self.nodes, self.secrets = settings, node, nodes, secrets
        self.listeners, self.extra_config, self.scram = dict(listeners or {}), config, scram
        self.host = settings.kafka_host_port[0]
        self.port, self.controller_port = _ports(settings, node)
        self.lib = settings.cache / f"kafka-{KAFKA_VERSION}"
        name = "kafka" if node == 1 else f"kafka-{node}"
        self.data = settings.home / f"{name}-data"
        self.config = settings.home / name / "server.properties"
        self.process = ManagedProcess(
            name=name,
            run_dir=settings.home / "run",
            log=settings.home / "logs" / f"{name}.log",
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

    def tool(self, name: str, *args: str) -> list[str]:
        """The command line of Kafka's tool `name` (a key of TOOLS) with `args`."""
        log4j = self.lib.parent / "tools-log4j2.properties"
        log4j.write_text(TOOL_LOG4J2)
        jvm = ["-Xmx256m", f"-Dlog4j2.configurationFile={log4j}"]
        return self._java(TOOLS[name], *args, jvm=jvm)

    def write_config(self) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        (self.config.parent / "log4j2.properties").write_text(LOG4J2)
        voters = ",".join(
            f"{n}@{self.host}:{_ports(self.settings, n)[1]}" for n in range(1, self.nodes + 1)
        )
        # Internal topics as replicated as the cluster allows; one lost node tolerated.
        replicas, in_sync = min(3, self.nodes), min(2, self.nodes)
        own = "PLAINTEXT" if self.secrets is None else "SASL_SSL"
        clients = {own: self.port, **self.listeners}
        advertised = ",".join(f"{name}://{self.host}:{port}" for name, port in clients.items())
        protocols = ",".join(f"{name}:{name}" for name in clients)
        controller = "PLAINTEXT" if self.secrets is None else "SSL"
        secured = [] if self.secrets is None else self.secrets.broker_config()
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.node}",
                    f"controller.quorum.voters={voters}",
                    f"listeners={advertised},CONTROLLER://{self.host}:{self.controller_port}",
                    f"advertised.listeners={advertised}",
                    f"inter.broker.listener.name={own}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map=CONTROLLER:{controller},{protocols}",
                    f"log.dirs={self.data}",
                    "num.partitions=1",
                    f"offsets.topic.replication.factor={replicas}",
                    f"transaction.state.log.replication.factor={replicas}",
                    f"transaction.state.log.min.isr={in_sync}",
                    f"share.coordinator.state.topic.replication.factor={replicas}",
                    f"share.coordinator.state.topic.min.isr={in_sync}",
                    "group.initial.rebalance.delay.ms=0",
                    # Topics come from the catalog, with its partitions and policies; a
                    # client asking for a missing one must hear so, not get a default.
                    "auto.create.topics.enable=false",
                    *secured,
                    *self.extra_config,
                    "",
                ]
            )
        )

    def ensure_formatted(self, cluster: str) -> None:
        """Format this node's storage for cluster `cluster`, unless it is already."""
        if (self.data / "meta.properties").exists():
            return
        scram = [*([] if self.secrets is None else self.secrets.scram()), *self.scram]
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                *("format", "-t", cluster, "-c", str(self.config)),
                *(arg for entry in scram for arg in ("--add-scram", entry)),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def launch(self) -> "subprocess.Popen[bytes]":
        """Start the node's process; a cluster's nodes answer only once a quorum is up."""
        log4j = self.config.parent / "log4j2.properties"
        argv = self._java(
            "kafka.Kafka",
            str(self.config),
            jvm=[*JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}"],
        )
        return self.process.start(argv, cwd=self.config.parent)

    def start(self) -> None:
        """A single node: configured, formatted, started and answering."""
        self.write_config()
        self.ensure_formatted(cluster_id())
        wait_until(self.healthy, self.process, timeout=90, child=self.launch())

    @property
    def ports(self) -> tuple[int, ...]:
        return self.port, self.controller_port, *self.listeners.values()

    def ports_taken(self) -> list[int]:
        return [p for p in self.ports if port_open(self.host, p)]

    def client_settings(self, principal: str = "admin") -> Settings:
        """How a client reaches this node: as `principal`, when it is secured."""
        direct = self.settings.model_copy(update={"kafka_bootstrap": self.address})
        return direct if self.secrets is None else self.secrets.settings(principal, direct)

    def healthy(self) -> bool:
        """True when a client's metadata request answers."""
        if not port_open(self.host, self.port):
            return False
        return asyncio.run(_metadata_answers(connection(self.client_settings())))


async def _metadata_answers(options: dict[str, Any]) -> bool:
    client = AIOKafkaAdminClient(**options, request_timeout_ms=3000)
    try:
        await client.start()
        await client.list_topics()
    except (KafkaError, OSError):
        return False
    finally:
        await client.close()
    return True
