"""A stack with a three-broker KRaft cluster, as `tideline stack up --brokers 3` starts it,
in a home and on ports of its own beside the session's stack: 15000 above the session's
(with the defaults, Kafka 24092, 24094, 24096 and Redis 21379), so two sessions on two
stacks do not share a cluster. Not higher: from 32768 up, Linux hands ports to outgoing
connections, and one of the suite's clients held a broker's port there once."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tideline.settings import Settings

from ops.stack import local
from ops.stack.kafka_broker import KafkaBroker, bootstrap

NODES = 3


ABOVE = 15_000


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1].split("/", 1)[0])


class Cluster:
    def __init__(self, home: Path, session: Settings) -> None:
        kafka = _port(session.kafka_bootstrap.split(",")[0]) + ABOVE
        base = Settings(
            home=home,
            kafka_bootstrap=f"localhost:{kafka}",
            kafka_controller_port=kafka + 1,
            redis_url=f"redis://localhost:{_port(session.redis_url) + ABOVE}/0",
        )
        self.base = base

    def up(self) -> None:
        local.up(self.base, NODES)
        # read again: a new home's cluster is secured, with the credentials made now
        self.brokers: list[KafkaBroker] = local.brokers(self.base, NODES)
        every = {"kafka_bootstrap": bootstrap(self.base, NODES)}
        self.settings = local.reread(self.base).model_copy(update=every)

    def down(self) -> None:
        local.down(self.base)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found = Cluster(tmp_path_factory.mktemp("cluster"), Settings())
    found.up()
    yield found
    found.down()


@pytest.fixture
def on_cluster(cluster: Cluster) -> Settings:
    """The cluster's settings with a topic prefix of this test's own."""
    return cluster.settings.model_copy(update={"topic_prefix": f"rel-{uuid.uuid4().hex[:10]}."})
