"""The online store survives Redis: a killed redis-server keeps its writes, and when Redis
loses them anyway (a flush, a restart without its files) the feature store rewrites
every entity it owns, running or at its next start. On a private redis-server started
as `tideline stack up` starts it."""

import shutil
from collections.abc import Iterator

import pytest
import redis
from tideline import kafka, project
from tideline.online_store import Entry, OnlineStore
from tideline.settings import Settings

from ops import launcher
from ops.stack.redis_server import RedisServer

from ...projects import EXAMPLES
from .running import Service, produce
from .test_featurestore_service import _assert_no_skew, _encode, _featurestore, _stream

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])


@pytest.fixture
def private(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the test's own, configured as the launcher configures it."""
    home = tmp_path_factory.mktemp("redis-home")
    url = f"redis://localhost:{launcher.free_port()}/0"
    server = RedisServer(settings.model_copy(update={"redis_url": url, "home": home}))
    server.start()
    yield server
    server.process.stop()


def _flush(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.flushall()
    finally:
        client.close()


def test_a_killed_redis_server_comes_back_with_every_write(private: RedisServer) -> None:
    store = OnlineStore(private.settings, CARDS)
    entries = [
        Entry(f"k{i}", f"e{i}", 1_900_000_000_000, i, {"tx_count_10m": i}) for i in range(200)
    ]
    try:
        assert store.write(entries) == len(entries)
    finally:
        store.close()
    assert private.process.kill()
    private.start()
    store = OnlineStore(private.settings, CARDS)
    try:
        found = store.get([e.entity for e in entries])
    finally:
        store.close()
    assert [f.event_id for f in found] == [e.event_id for e in entries]


async def test_the_feature_store_rewrites_what_redis_lost(
    settings: Settings, private: RedisServer, running: list[Service]
) -> None:
    await kafka.create_topics(settings)
    own = private.settings  # Kafka as the test's, Redis the private one
    raw = _stream(CARDS, 3000, seed=17)
    first, second = raw[:2000], raw[2000:]
    await produce(settings, "events", **_encode(CARDS, first))
    svc = _featurestore(own, EXAMPLES[0], running)
    svc.wait_for("tideline_featurestore_events_total", len(first))
    await _assert_no_skew(own, CARDS)
    assert svc.metric("tideline_featurestore_online_rebuilds_total") == 0

    # A flush while no event comes: the idle partitions' marks are gone, so are their keys.
    _flush(own)
    svc.wait_for("tideline_featurestore_online_rebuilds_total", 1)
    await _assert_no_skew(own, CARDS)

    # redis-server killed and back without its files: empty, as with persistence off.
    assert private.process.kill()
    shutil.rmtree(private.data)
    private.start()
    await produce(settings, "events", **_encode(CARDS, second))
    svc.wait_for("tideline_featurestore_events_total", len(raw))
    assert await _assert_no_skew(own, CARDS) == len(raw)
    assert svc.metric("tideline_featurestore_online_rebuilds_total") >= 2
    assert svc.alive()
    assert svc.stop() == 0

    # Lost while no feature store ran: the next one finds out as it restores its state.
    _flush(own)
    again = _featurestore(own, EXAMPLES[0], running)
    again.wait_for("tideline_featurestore_online_rebuilds_total", 1)
    assert await _assert_no_skew(own, CARDS) == len(raw)
    assert again.stop() == 0
