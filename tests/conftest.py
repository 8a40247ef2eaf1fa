"""The real stack for integration tests: a running one, Docker containers, or our launcher.

Order: if TIDELINE_KAFKA_BOOTSTRAP and TIDELINE_REDIS_URL already answer (`make test`
after `tideline stack up`, or CI), use them; else testcontainers when a Docker engine
answers; else start the local launcher and stop it after the session.
"""

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from tideline.settings import Settings

from ops import launcher
from ops.stack import local

KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7"


def _answers(settings: Settings) -> bool:
    return all(s.healthy() for s in local.servers(settings))


def _docker_answers() -> bool:
    import docker

    if "DOCKER_HOST" not in os.environ and not Path("/var/run/docker.sock").exists():
        return False  # and docker-py would leak a socket finding that out
    try:
        client = docker.from_env(timeout=3)
    except docker.errors.DockerException:  # no socket, no permission: no engine here
        return False
    try:
        return bool(client.ping())
    except docker.errors.DockerException:
        return False
    finally:
        client.close()


def _containers(stack: ExitStack) -> Settings:
    from testcontainers.community.redis import RedisContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    # apache/kafka's default config is a single KRaft node advertising localhost:9092.
    kafka = stack.enter_context(DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, 9092))
    wait_for_logs(kafka, "Kafka Server started", timeout=120)
    redis = stack.enter_context(RedisContainer(REDIS_IMAGE))
    host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
    return Settings(kafka_bootstrap="localhost:9092", redis_url=f"redis://{host}:{port}/0")


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    settings = Settings()
    if _answers(settings):
        yield settings
        return
    with ExitStack() as stack:
        if _docker_answers():
            yield _containers(stack)
            return
        local.up(settings)
        stack.callback(local.down, settings)
        yield local.reread(settings)  # with the credentials the secured stack was made with


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    """Stack settings with a topic prefix of this test's own."""
    return stack_settings.model_copy(update={"topic_prefix": f"test-{uuid.uuid4().hex[:10]}."})


@pytest.fixture
def running() -> Iterator[list[launcher.Process]]:
    """Service processes a test starts; whatever is still alive at its end is killed."""
    started: list[launcher.Process] = []
    yield started
    for svc in started:
        if svc.alive():
            svc.stop(signal.SIGKILL)
