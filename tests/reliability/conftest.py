"""A stack with a three-broker KRaft cluster, as `tideline stack up --brokers 3` starts it,
in a home and on ports of its own (Kafka 39092, 39094, 39096; Redis 39379), beside the
session's stack."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tideline.settings import Settings

from ops.stack import local
from ops.stack.kafka_broker import KafkaBroker, bootstrap

NODES = 3


class Cluster:
    def __init__(self, home: Path) -> None:
        base = Settings(
            home=home,
            kafka_bootstrap="localhost:39092",
            kafka_controller_port=39093,
            redis_url="redis://localhost:39379/0",
        )
        self.brokers: list[KafkaBroker] = local.brokers(base, NODES)
        self.settings = base.model_copy(update={"kafka_bootstrap": bootstrap(base, NODES)})
        self.base = base

    def up(self) -> None:
        local.up(self.base, NODES)

    def down(self) -> None:
        local.down(self.base)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found = Cluster(tmp_path_factory.mktemp("cluster"))
    found.up()
    yield found
    found.down()


@pytest.fixture
def on_cluster(cluster: Cluster) -> Settings:
    """The cluster's settings with a topic prefix of this test's own."""
    return cluster.settings.model_copy(update={"topic_prefix": f"rel-{uuid.uuid4().hex[:10]}."})
