"""A subscriber's view: from `models.updated` and `models.artifacts` alone to a verified model."""

import asyncio
import copy
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tideline import artifacts, kafka, serde
from tideline.models import REFUSED, UPDATES, ModelClient
from tideline.settings import Settings

from ops.stack import security

from ..examples import example
from .services.running import forge_champion, produce_signed

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
    for u in updates:
        key = f"fraud:{u['model']['version']}".encode()
        await produce_signed(settings, [(serde.encode(UPDATES.schema(), u), key)])


async def test_the_champion_arrives_verified_and_predicts_as_trained(settings: Settings) -> None:
    await kafka.create_topics(settings)
    model = LogisticRegression().fit(X, Y)
    ref = await artifacts.publish(settings, artifacts.dump(model))
    await _announce(settings, _update(ref, 1, []), _update(ref, 1, ["champion"]))

    # as a subscriber of the secured stack, which may read these two topics and no other
    secrets = security.secured(settings.home)
    reader = settings if secrets is None else secrets.settings("subscriber", settings)
    client = ModelClient(reader)
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
    for key, value in ((b"fraud:2", b"garbage"), (b"fraud:3", b"")):  # signed, yet unreadable
        await produce_signed(settings, [(value, key)])
    await _announce(settings, _update(ref, 1, ["champion"]))

    # as a subscriber of the secured stack, which may read these two topics and no other
    secrets = security.secured(settings.home)
    reader = settings if secrets is None else secrets.settings("subscriber", settings)
    client = ModelClient(reader)
    loaded = await client.load("fraud")
    assert (loaded.name, loaded.number) == ("fraud", 1)
    updates = client.updates()
    actions = [(await asyncio.wait_for(anext(updates), timeout=30))["action"] for _ in range(2)]
    await updates.aclose()
    assert actions == ["registered", "promoted"]


async def test_a_champion_not_signed_by_the_registry_is_refused_and_the_real_one_stays(
    settings: Settings,
) -> None:
    await kafka.create_topics(settings)
    model = LogisticRegression().fit(X, Y)
    ref = await artifacts.publish(settings, artifacts.dump(model))
    await _announce(settings, _update(ref, 1, []), _update(ref, 1, ["champion"]))
    client = ModelClient(settings)
    states = client.states()
    assert (await anext(states)).champion("fraud")["version"] == 1  # type: ignore[index]

    refused = {r: REFUSED.labels(r)._value.get() for r in ("unsigned", "bad_signature")}
    constant = LogisticRegression().fit(X, Y)
    constant.coef_[:] = 0.0  # the same score for every row
    assert len(set(constant.predict_proba(X)[:, 1])) == 1
    forged = await forge_champion(settings, _update(ref, 1, ["champion"])["model"], constant)
    await _announce(settings, _update(ref, 2, []))  # a genuine record after the forged ones
    state = await asyncio.wait_for(anext(states), timeout=30)
    await states.aclose()
    assert state.champion("fraud")["version"] == 1  # type: ignore[index]
    assert sorted(v["version"] for v in state.listing()) == [1, 2]  # the forged one is not there
    now = {r: REFUSED.labels(r)._value.get() for r in refused}
    assert {r: now[r] - refused[r] for r in refused} == {"unsigned": 1, "bad_signature": 1}
    assert forged == 2
    loaded = await client.load("fraud")
    assert (loaded.model.predict_proba(X) == model.predict_proba(X)).all()
