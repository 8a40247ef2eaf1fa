"""The registry's state as a fold of its events: promotions, rollbacks, archiving, rebuilds."""

from datetime import UTC, datetime
from typing import Any

import pytest
from tideline.registry import Registry, TransitionError

AT = datetime(2026, 11, 24, tzinfo=UTC)


def _registration(registry: Registry, name: str, trigger: str = "") -> dict[str, Any]:
    """The record that registers the next version of `name`."""
    version = {"model_name": name, "trigger": {"kind": "request", "id": trigger}}
    (update,) = registry.register(version, "gate", AT)
    return update


def _registered(registry: Registry, name: str = "fraud") -> int:
    update = _registration(registry, name)
    registry.apply(update)
    return int(update["model"]["version"])


def _carry_out(
    registry: Registry, updates: list[dict[str, Any]], log: list[dict[str, Any]]
) -> None:
    for update in updates:  # as the service will: publish, then apply
        log.append(update)
        registry.apply(update)


def test_promotion_moves_the_alias_and_steps_the_old_champion_down() -> None:
    registry, log = Registry(), list[dict[str, Any]]()
    first, second = _registered(registry), _registered(registry)
    _carry_out(registry, registry.promote("fraud", first, "promoted", "first", "gate", AT), log)
    _carry_out(registry, registry.promote("fraud", second, "promoted", "+0.05 f1", "gate", AT), log)
    champion = registry.champion("fraud")
    assert champion is not None
    assert (champion["version"], champion["state"]) == (second, "production")
    old = registry.version("fraud", first)
    assert (old["state"], old["aliases"]) == ("staging", [])
    assert [u["action"] for u in log] == ["promoted", "replaced", "promoted"]


def test_rollback_goes_to_the_champion_before_or_to_any_version() -> None:
    registry, log = Registry(), list[dict[str, Any]]()
    versions = [_registered(registry) for _ in range(3)]
    for number in versions:
        _carry_out(registry, registry.promote("fraud", number, "promoted", "", "gate", AT), log)
    _carry_out(registry, registry.rollback("fraud", None, "bad night", "ops", AT), log)
    assert registry.champion("fraud")["version"] == 2  # type: ignore[index]
    _carry_out(registry, registry.rollback("fraud", 1, "further", "ops", AT), log)
    assert registry.champion("fraud")["version"] == 1  # type: ignore[index]
    assert log[-1]["action"] == "rolled_back"
    assert log[-1]["decided_by"] == "ops"


def test_refusals_name_what_is_wrong() -> None:
    registry = Registry()
    only = _registered(registry)
    with pytest.raises(TransitionError, match="no earlier champion"):
        registry.rollback("fraud", None, "", "ops", AT)
    with pytest.raises(TransitionError, match="no version 9"):
        registry.promote("fraud", 9, "promoted", "", "ops", AT)
    for update in registry.promote("fraud", only, "promoted", "", "gate", AT):
        registry.apply(update)
    with pytest.raises(TransitionError, match="is the champion"):
        registry.archive("fraud", only, "", "ops", AT)
    other = _registered(registry)
    for update in registry.archive("fraud", other, "old", "ops", AT):
        registry.apply(update)
    with pytest.raises(TransitionError, match="archived"):
        registry.promote("fraud", other, "promoted", "", "ops", AT)


def test_replaying_the_published_events_rebuilds_the_same_state() -> None:
    """Also after compaction: only each version's last record is left."""
    registry, log = Registry(), list[dict[str, Any]]()
    for name in ("fraud", "churn"):
        for _ in range(3):
            update = _registration(registry, name)
            number = update["model"]["version"]
            _carry_out(registry, [update], log)
            _carry_out(registry, registry.promote(name, number, "promoted", "", "gate", AT), log)
    _carry_out(registry, registry.rollback("fraud", None, "", "ops", AT), log)
    _carry_out(registry, registry.archive("churn", 1, "", "ops", AT), log)
    compacted = {(u["model"]["model_name"], u["model"]["version"]): i for i, u in enumerate(log)}
    for kept in (log, [log[i] for i in sorted(compacted.values())]):
        rebuilt = Registry()
        for update in kept:
            rebuilt.apply(update)
        assert rebuilt.listing() == registry.listing()
        assert rebuilt.rollback("fraud", None, "", "ops", AT)[-1]["model"]["version"] == 3


def test_registering_numbers_versions_per_name_and_finds_them_by_trigger() -> None:
    registry, log = Registry(), list[dict[str, Any]]()
    for name, trigger in [("fraud", "r1"), ("churn", "r2"), ("fraud", "r3")]:
        _carry_out(registry, [_registration(registry, name, trigger)], log)
    assert [(u["model"]["model_name"], u["model"]["version"]) for u in log] == [
        ("fraud", 1),
        ("churn", 1),
        ("fraud", 2),
    ]
    assert {u["action"] for u in log} == {"registered"}
    found = registry.find("fraud", {"kind": "request", "id": "r3"})
    assert found is not None
    assert (found["version"], found["state"]) == (2, "candidate")
    assert registry.find("fraud", {"kind": "request", "id": "r2"}) is None


def test_a_rejected_candidate_may_become_the_challenger_and_hand_the_alias_on() -> None:
    registry, log = Registry(), list[dict[str, Any]]()
    versions = [_registered(registry) for _ in range(4)]
    _carry_out(registry, registry.promote("fraud", versions[0], "promoted", "", "gate", AT), log)
    _carry_out(registry, registry.reject("fraud", 2, "-0.01", "gate", AT, challenger=True), log)
    _carry_out(registry, registry.reject("fraud", 3, "NaN", "gate", AT, challenger=False), log)
    _carry_out(registry, registry.reject("fraud", 4, "-0.02", "gate", AT, challenger=True), log)
    assert [u["action"] for u in log] == [
        "promoted",
        "challenger",
        "rejected",
        "replaced",
        "challenger",
    ]
    states = {v["version"]: (v["state"], v["aliases"]) for v in registry.listing()}
    assert states == {
        1: ("production", ["champion"]),
        2: ("rejected", []),
        3: ("rejected", []),
        4: ("rejected", ["challenger"]),
    }


def test_commands_are_carried_out_and_their_updates_named_by_the_command() -> None:
    registry, log = Registry(), list[dict[str, Any]]()
    first, second = _registered(registry), _registered(registry)
    order = {
        "command_id": "c1",
        "action": "promote",
        "model_name": "fraud",
        "version": second,
        "requested_by": "ops",
        "reason": None,
        "requested_at": AT,
    }
    updates = registry.carry_out(order, AT)
    _carry_out(registry, updates, log)
    assert [u["update_id"] for u in updates] == ["c1-0"]
    assert (updates[0]["reason"], updates[0]["decided_by"]) == ("promote by ops", "ops")
    archive = order | {"command_id": "c2", "action": "archive", "version": first}
    _carry_out(registry, registry.carry_out(archive, AT), log)
    assert registry.version("fraud", first)["state"] == "archived"
    with pytest.raises(TransitionError, match="promote needs a version"):
        registry.carry_out(order | {"version": None}, AT)
    with pytest.raises(TransitionError, match="unknown action 'delete'"):
        registry.carry_out(order | {"action": "delete"}, AT)


def test_paused_promotion_holds_a_passing_candidate_and_survives_compaction() -> None:
    from tideline import registry as registry_module

    registry, log = Registry(), list[dict[str, Any]]()
    first, second = _registered(registry), _registered(registry)
    _carry_out(registry, registry.promote("fraud", first, "promoted", "", "gate", AT), log)
    order = {
        "command_id": "p1",
        "action": "pause",
        "model_name": "fraud",
        "version": None,
        "requested_by": "ops",
        "reason": None,
        "requested_at": AT,
    }
    _carry_out(registry, registry.carry_out(order, AT), log)
    assert registry.paused("fraud")
    with pytest.raises(TransitionError, match="already paused"):
        registry.carry_out(order, AT)
    _carry_out(registry, registry.hold("fraud", second, "+0.05 f1", "gate", AT), log)
    held = registry.version("fraud", second)
    assert (held["state"], held["aliases"]) == ("candidate", ["challenger"])
    assert registry.champion("fraud")["version"] == first  # type: ignore[index]
    # compaction keeps the last record per key: the pause has a key of its own
    keys = [registry_module.key(u) for u in log]
    assert keys == ["fraud:1", "fraud:promotion", "fraud:2"]
    compacted = {registry_module.key(u): u for u in log}
    rebuilt = Registry()
    for update in sorted(compacted.values(), key=log.index):
        rebuilt.apply(update)
    assert rebuilt.paused("fraud")
    assert rebuilt.listing() == registry.listing()
    resume = order | {"command_id": "p2", "action": "resume"}
    _carry_out(registry, registry.carry_out(resume, AT), log)
    assert not registry.paused("fraud")
    with pytest.raises(TransitionError, match="has no versions"):
        Registry().carry_out(order, AT)
