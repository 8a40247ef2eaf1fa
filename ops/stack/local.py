"""Start, stop and inspect the local stack: one Kafka broker and one Redis server."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tideline.errors import StackError
from tideline.settings import Settings

from ops.stack.kafka_broker import KafkaBroker
from ops.stack.process import ManagedProcess, wait_until
from ops.stack.redis_server import RedisServer


class Server(Protocol):
    process: ManagedProcess

    @property
    def address(self) -> str: ...

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


def servers(settings: Settings) -> list[Server]:
    return [KafkaBroker(settings), RedisServer(settings)]


def up(settings: Settings) -> list[str]:
    """Start what is not running yet; returns what it did, one line per server."""
    broker = KafkaBroker(settings)
    done = []
    if broker.ensure_jars():
        done.append(f"fetched Kafka jars into {broker.lib}")
    to_start = []
    for server in servers(settings):
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
    for server in to_start:
        server.start()
        done.append(
            f"{server.process.name} started on {server.address} (log: {server.process.log})"
        )
    return done


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
