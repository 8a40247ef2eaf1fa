"""The online store survives Redis: a killed redis-server keeps its writes, and when Redis
loses them anyway (a flush, a restart without its files) the feature store rewrites
every entity it owns, running or at its next start. On a private redis-server started
as `tideline stack up` starts it."""

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from tideline import kafka, project, serde
from tideline.online_store import Entry, OnlineStore
from tideline.settings import Settings

from ops import launcher
from ops.stack import security
from ops.stack.redis_server import RedisServer
from services.featurestore.online import OFFSET_HEADER

from ...examples import example, newer_version, oversized
from ...projects import EXAMPLES
from .running import FORGED, Service, produce
from .test_featurestore_service import _assert_no_skew, _encode, _featurestore, _stream

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])


@pytest.fixture
def private(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the test's own, configured as the launcher configures it."""
    home = tmp_path_factory.mktemp("redis-home")
    url = f"redis://localhost:{launcher.free_port()}/0"
    secrets = security.secured(settings.home)  # the stack's Redis users, if it has them
    options = [] if secrets is None else secrets.redis_options()
    server = RedisServer(settings.model_copy(update={"redis_url": url, "home": home}), options)
    server.start()
    yield server
    server.process.stop()


def _flush(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_credentials)
    try:
        client.flushall()
    finally:
        client.close()


def _forged(entity: str) -> list[tuple[list[bytes], list[tuple[str, bytes]]]]:
    """Records on `features` a rebuild must skip, each batch with its headers: a stranger's
    bytes (small, and as large as the topic takes), a newer release's vector, and vectors for `entity` newer than any, but of
    another feature set or without an offset the guard can read."""
    newest = example(CARDS.feature_schema.parsed) | {
        "entity_id": entity,
        "event_time": datetime(2100, 1, 1, tzinfo=UTC),
    }
    other_set = serde.encode(CARDS.feature_schema, newest | {"feature_version": "other"})
    unordered = serde.encode(
        CARDS.feature_schema, newest | {"feature_version": CARDS.features.version}
    )
    return [
        (
            [
                b"\x00garbage",
                *oversized("features", CARDS.feature_schema),
                newer_version(CARDS.feature_schema),
                other_set,
            ],
            [FORGED],
        ),
        ([unordered], [FORGED, (OFFSET_HEADER, b"not an offset")]),
    ]


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
    # Kafka and the home's credentials as the test's, Redis the private one
    own = settings.model_copy(update={"redis_url": private.settings.redis_url})
    raw = _stream(CARDS, 3000, seed=17)
    first, second = raw[:2000], raw[2000:]
    await produce(settings, "events", **_encode(CARDS, first))
    svc = _featurestore(own, EXAMPLES[0], running)
    svc.wait_for("tideline_featurestore_events_total", len(first))
    await _assert_no_skew(own, CARDS)
    assert svc.metric("tideline_featurestore_online_rebuilds_total") == 0

    # A flush while no event comes: the idle partitions' marks are gone, so are their keys.
    # What a rebuild reads back includes records no feature store of this set wrote.
    forged = _forged(raw[0]["entity_id"])
    for values, headers in forged:
        await produce(settings, "features", values, [b"k"] * len(values), headers=headers)
    _flush(own)
    svc.wait_for("tideline_featurestore_online_rebuilds_total", 1)
    await _assert_no_skew(own, CARDS)
    skipped = svc.metric("tideline_featurestore_online_rebuild_skipped_total")
    assert skipped == sum(len(values) for values, _ in forged)

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
