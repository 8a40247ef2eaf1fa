"""A subscriber's view: from `models.updated` and `models.artifacts` alone to a verified model."""

import asyncio
import copy
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tideline import artifacts, kafka, serde
from tideline.models import UPDATES, ModelClient
from tideline.settings import Settings

from ..examples import example
from .services.running import produce

pytestmark = pytest.mark.integration

X = np.random.default_rng(2).random((80, 4))
Y = np.arange(80) % 2


def _update(ref: dict[str, Any], version: int, aliases: list[str]) -> dict[str, Any]:
    update: dict[str, Any] = copy.deepcopy(example(UPDATES.schema().parsed))
    update["action"] = "promoted" if aliases else "registered"
    update["model"] |= {
        "model_name": "fraud",
        "version": version,
        "state": "production" if aliases else "candidate",
        "aliases": aliases,
        "artifact": ref,
    }
    return update


async def _announce(settings: Settings, *updates: dict[str, Any]) -> None:
    await produce(
        settings,
        "models.updated",
        [serde.encode(UPDATES.schema(), u) for u in updates],
        keys=[f"fraud:{u['model']['version']}".encode() for u in updates],
    )


async def test_the_champion_arrives_verified_and_predicts_as_trained(settings: Settings) -> None:
    await kafka.create_topics(settings)
    model = LogisticRegression().fit(X, Y)
    ref = await artifacts.publish(settings, artifacts.dump(model))
    await _announce(settings, _update(ref, 1, []), _update(ref, 1, ["champion"]))

    client = ModelClient(settings)
    loaded = await client.load("fraud")
    assert (loaded.name, loaded.number) == ("fraud", 1)
    assert (loaded.model.predict_proba(X) == model.predict_proba(X)).all()

    updates = client.updates()
    first = await asyncio.wait_for(anext(updates), timeout=30)
    assert first["action"] == "registered"
    await updates.aclose()


async def test_records_pointing_elsewhere_or_at_other_bytes_are_refused(settings: Settings) -> None:
    await kafka.create_topics(settings)
    ref = await artifacts.publish(settings, artifacts.dump(LogisticRegression().fit(X, Y)))
    client = ModelClient(settings)
    elsewhere = _update(ref | {"topic": "/srv/models/fraud.skops"}, 1, ["champion"])["model"]
    with pytest.raises(artifacts.ArtifactError, match="not /srv/models"):
        await client.load_version(elsewhere)
    other_bytes = _update(ref | {"sha256": "0" * 64}, 1, ["champion"])["model"]
    with pytest.raises(artifacts.ArtifactError, match="lacks chunks"):
        await client.load_version(other_bytes)
    with pytest.raises(ValueError, match="has no champion"):
        await client.load("fraud")


async def test_an_unreadable_update_is_skipped_not_fatal(settings: Settings) -> None:
    # the topic is compacted and kept for ever: one bad record must not stop every reader
    await kafka.create_topics(settings)
    model = LogisticRegression().fit(X, Y)
    ref = await artifacts.publish(settings, artifacts.dump(model))
    await _announce(settings, _update(ref, 1, []))
    await produce(settings, "models.updated", [b"garbage", b""], keys=[b"fraud:2", b"fraud:3"])
    await _announce(settings, _update(ref, 1, ["champion"]))

    client = ModelClient(settings)
    loaded = await client.load("fraud")
    assert (loaded.name, loaded.number) == ("fraud", 1)
    updates = client.updates()
    actions = [(await asyncio.wait_for(anext(updates), timeout=30))["action"] for _ in range(2)]
    await updates.aclose()
    assert actions == ["registered", "promoted"]
