"""The registry's state as a fold of its events: promotions, rollbacks, archiving, rebuilds."""

from datetime import UTC, datetime
from typing import Any

import pytest
from tideline.registry import Registry, TransitionError

AT = datetime(2026, 11, 24, tzinfo=UTC)


def _registration(registry: Registry, name: str) -> dict[str, Any]:
    """The record that registers the next version of `name`."""
    version = {"model_name": name, "version": registry.next_version(name)}
    version |= {"state": "candidate", "aliases": []}
    return {"action": "registered", "model": version, "reason": "", "decided_by": "gate", "at": AT}


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
