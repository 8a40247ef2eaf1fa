"""Start, stop and inspect the local stack: Kafka (one broker, or a cluster of several on
this machine) and one Redis server."""

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tideline import access, kafka
from tideline.errors import StackError
from tideline.settings import Settings

from ops.stack import security
from ops.stack.kafka_broker import KafkaBroker, bootstrap, cluster_id, formatted_nodes
from ops.stack.process import ManagedProcess, ephemeral_ports, wait_until
from ops.stack.redis_server import RedisServer


class Server(Protocol):
    process: ManagedProcess

    @property
    def address(self) -> str: ...

    @property
    def ports(self) -> tuple[int, ...]: ...

    def start(self) -> None: ...

    def healthy(self) -> bool: ...

    def ports_taken(self) -> list[int]: ...


@dataclass(frozen=True)
class ServerStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool
    log: Path


def brokers(settings: Settings, nodes: int | None = None) -> list[KafkaBroker]:
    """The cluster's nodes: `nodes` of them, or as many as the home was formatted with."""
    count = nodes or formatted_nodes(settings) or 1
    secrets = security.secured(settings.home)
    return [KafkaBroker(settings, node, count, secrets) for node in range(1, count + 1)]


def servers(settings: Settings, nodes: int | None = None) -> list[Server]:
    secrets = security.secured(settings.home)
    if secrets is None:
        redis = RedisServer(settings)
    else:  # seen to answer by its owner, whatever `settings` were made with
        redis = RedisServer(secrets.settings("admin", settings), secrets.redis_options())
    return [*brokers(settings, nodes), redis]


def up(settings: Settings, nodes: int | None = None, insecure: bool = False) -> list[str]:
    """Start what is not running yet (Kafka as `nodes` brokers: default, as the home
    was first started, else one); returns what it did, one line per server.

    A new home's cluster is secured (TLS, SCRAM, ACLs: `security`) unless `insecure`;
    one formatted before keeps what it was formatted with."""
    formatted = formatted_nodes(settings)
    if nodes is not None and formatted not in (0, nodes):
        raise StackError(
            f"{settings.home} holds a cluster of {formatted} broker(s), not {nodes}: start it as"
            " it is, or stop it and use another TIDELINE_HOME (or remove this one's data)"
        )
    done = []
    if formatted == 0 and not insecure and security.secured(settings.home) is None:
        security.make(settings)
        done.append(f"made a CA and credentials for every principal in {settings.home}")
    if security.secured(settings.home) is None and not insecure:
        done.append(f"warning: {settings.home}'s cluster is plaintext, with no ACLs (--insecure)")
    elif insecure and security.secured(settings.home) is not None:
        raise StackError(
            f"{settings.home} holds a secured cluster: --insecure applies to a new home"
        )
    cluster = brokers(settings, nodes)
    if cluster[0].ensure_jars():
        done.append(f"fetched Kafka jars into {cluster[0].lib}")
    to_start = []
    for server in servers(settings, nodes):
        if server.process.pid() is None:
            to_start.append(server)
            continue
        # Ours and running, perhaps still starting: wait for it rather than start another.
        if not server.healthy():
            wait_until(server.healthy, server.process, timeout=60)
        done.append(f"{server.process.name} already running on {server.address}")
    # Check every port before starting anything, so a conflict leaves nothing half up.
    for server in to_start:
        taken = server.ports_taken()
        if taken:
            raise StackError(
                f"{server.process.name}: port {', '.join(map(str, taken))} is already taken by a "
                f"process this stack did not start. Stop it, or point Tideline elsewhere "
                f"(TIDELINE_KAFKA_BOOTSTRAP, TIDELINE_KAFKA_CONTROLLER_PORT, TIDELINE_REDIS_URL)."
            )
    done.extend(_ephemeral_warnings(to_start))
    starting = [s for s in to_start if isinstance(s, KafkaBroker)]
    if len(cluster) > 1 and starting:
        _start_cluster(cluster, starting)
    for server in to_start:
        if len(cluster) == 1 or not isinstance(server, KafkaBroker):
            server.start()
    for server in to_start:
        done.append(
            f"{server.process.name} started on {server.address} (log: {server.process.log})"
        )
    if len(cluster) > 1:
        done.append(f"clients: TIDELINE_KAFKA_BOOTSTRAP={bootstrap(settings, len(cluster))}")
    if cluster[0].secrets is not None:  # the catalog's ACLs for the configured prefix
        asyncio.run(_grant(cluster[0].client_settings()))
        done.append(f"granted the catalog's ACLs under {settings.topic_prefix!r}")
    return done


async def _grant(settings: Settings) -> None:
    async with kafka.admin_session(settings) as client:
        await access.grant(client, settings)


def reread(settings: Settings) -> Settings:
    """`settings` read again, as they were given: with the credentials of a secured home
    that `up` has just made."""
    return Settings(**settings.model_dump(exclude_unset=True))


def _ephemeral_warnings(servers: list[Server]) -> list[str]:
    outgoing = ephemeral_ports()
    return [
        f"warning: {server.process.name}'s port {port} is in this machine's range for outgoing"
        f" connections ({outgoing.start}-{outgoing.stop - 1}): a client's socket may hold it"
        f" when {server.process.name} starts; a port below {outgoing.start} is safe"
        for server in servers
        for port in server.ports
        if port in outgoing
    ]


def _start_cluster(cluster: list[KafkaBroker], starting: list[KafkaBroker]) -> None:
    """Nodes of a cluster answer only once a quorum runs: all start, then all are awaited."""
    marker = cluster[0].settings.home / "kafka" / "nodes"
    known = {found for node in cluster if (found := _cluster_of(node)) is not None}
    shared = known.pop() if known else cluster_id()
    for node in starting:
        node.write_config()
        node.ensure_formatted(shared)
    marker.write_text(str(len(cluster)))
    children = [(node, node.launch()) for node in starting]
    for node, child in children:
        wait_until(node.healthy, node.process, timeout=120, child=child)


def _cluster_of(node: KafkaBroker) -> str | None:
    """The cluster id a node's storage was formatted with, if it was."""
    meta = node.data / "meta.properties"
    if not meta.exists():
        return None
    for line in meta.read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.removeprefix("cluster.id=")
    return None


def down(settings: Settings) -> list[str]:
    # Redis first, the broker last: it takes longest to shut down cleanly.
    return [
        f"{s.process.name} {'stopped' if s.process.stop() else 'was not running'}"
        for s in reversed(servers(settings))
    ]


def status(settings: Settings) -> list[ServerStatus]:
    return [
        ServerStatus(
            name=s.process.name,
            address=s.address,
            pid=s.process.pid(),
            healthy=s.healthy(),
            log=s.process.log,
        )
        for s in servers(settings)
    ]
