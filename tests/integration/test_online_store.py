"""The online store on a real redis-server: the event-time guard, TTLs, retrieval, the CLI."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tideline import project
from tideline.durations import epoch_millis, millis
from tideline.online_store import Entry, OnlineStore
from tideline.settings import Settings

from ..projects import EXAMPLES
from .services.running import environment

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
NOW = epoch_millis(datetime.now(UTC))


def _values(count: int) -> dict[str, Any]:
    return {name: None for name in CARDS.features.names} | {
        "tx_count_10m": count,
        "last_channel": "web",
    }


@pytest.fixture
def store(settings: Settings) -> Iterator[OnlineStore]:
    online = OnlineStore(settings, CARDS)
    yield online
    online.close()


def test_newer_wins_whatever_the_order_of_writes(store: OnlineStore) -> None:
    assert store.write([Entry("c1", "e-new", NOW, 10, _values(2))]) == 1
    assert store.write([Entry("c1", "e-late", NOW - 1000, 11, _values(1))]) == 0  # older event time
    assert store.write([Entry("c1", "e-tie", NOW, 9, _values(9))]) == 0  # same time, earlier offset
    assert store.write([Entry("c1", "e-new", NOW, 10, _values(2))]) == 1  # a replay rewrites itself
    (found,) = store.get(["c1"])
    assert (found.event_id, found.values["tx_count_10m"]) == ("e-new", 2)
    assert found.event_time == datetime.fromtimestamp(NOW / 1000, UTC)
    assert found.feature_version == CARDS.features.version


def test_a_vector_of_another_definition_reads_as_none(
    settings: Settings, store: OnlineStore
) -> None:
    store.write([Entry("c9", "e-old", NOW, 3, _values(4))])
    features = CARDS.features
    assert features.aggregations[-1].name == "last_channel"
    fewer = features.model_copy(update={"aggregations": features.aggregations[:-1]})
    changed = CARDS.model_copy(update={"features": fewer})
    other = OnlineStore(settings, changed)
    try:
        (found,) = other.get(["c9"])
    finally:
        other.close()
    assert (found.event_time, found.feature_version, found.event_id) == (None, None, None)
    assert "last_channel" not in found.values
    assert found.values["tx_count_10m"] == 0  # the empty window's, not the old definition's 4


def test_keys_expire_ttl_after_their_event_time(store: OnlineStore) -> None:
    ttl, now = millis(CARDS.features.ttl), epoch_millis(datetime.now(UTC))
    store.write([Entry("c2", "e-1", now - ttl + 60_000, 1, _values(1))])  # a minute left
    remaining = store.client.pttl(store.layout.key("c2"))
    assert 50_000 < remaining <= 60_000
    store.write([Entry("c3", "e-2", now - ttl - 1000, 2, _values(1))])  # expired already
    (gone,) = store.get(["c3"])
    assert gone.event_time is None


def test_many_entities_in_one_read_with_defaults_for_the_missing(store: OnlineStore) -> None:
    store.write([Entry(f"m{i}", f"e-{i}", NOW, i, _values(i)) for i in range(50)])
    found = store.get([f"m{i}" for i in range(50)] + ["nobody"])
    assert [f.values["tx_count_10m"] for f in found[:50]] == list(range(50))
    assert found[50].values == {
        name: (0 if name in ("tx_count_10m", "merchants_1h", "countries_30m") else None)
        for name in CARDS.features.names
    } | {"amount_sum_day": 0.0}


def test_features_get_shows_online_values(store: OnlineStore, settings: Settings) -> None:
    store.write([Entry("card-7", "e-7", NOW, 7, _values(3))])
    shown = subprocess.run(
        [sys.executable, "-m", "ops.cli", "features", "get", "card-7", "card-none"],
        env=environment(settings),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "card-7 as of" in shown
    assert "e-7" in shown
    assert "tx_count_10m" in shown
    assert "card-none: no online features; the defaults" in shown
