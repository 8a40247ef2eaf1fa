"""Versions, states and aliases of every model, as a fold of the `models.updated` events.

The registry service keeps its state this way, and so does any subscriber (see
`tideline.models`): every transition is a `tideline.ModelUpdated` record, and
applying them in topic order rebuilds the state exactly, so the audit trail is the
state. Transitions are pure: they return the records to publish, and the caller
applies them once published.

States: candidate (registered, not yet judged), production (the champion), staging
(a former champion, ready for a rollback), rejected (failed the gate; it may be the
challenger), archived (out of service). Aliases: champion, challenger.
"""

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Record = dict[str, Any]


class TransitionError(ValueError):
    """An order the registry cannot carry out: unknown version, archived, no earlier champion."""


@dataclass
class Model:
    versions: dict[int, Record] = field(default_factory=dict)
    # when each version last changed, in apply order: the topic is compacted to one
    # record per version, and this order survives compaction
    changed: dict[int, int] = field(default_factory=dict)
    paused: bool = False  # automatic promotion; see `pause`


POLICY = ("paused", "resumed")  # actions on the model's promotion, not on a version


class Registry:
    def __init__(self) -> None:
        self.models: dict[str, Model] = {}
        self._applied = 0

    def apply(self, update: Record) -> None:
        version = update["model"]
        model = self.models.setdefault(version["model_name"], Model())
        if update["action"] in POLICY:
            model.paused = update["action"] == "paused"
            return
        model.versions[version["version"]] = version
        self._applied += 1
        model.changed[version["version"]] = self._applied

    def next_version(self, name: str) -> int:
        return max(self.models.get(name, Model()).versions, default=0) + 1

    def champion(self, name: str) -> Record | None:
        model = self.models.get(name)
        if model is None:
            return None
        return next(
            (v for v in model.versions.values() if "champion" in v["aliases"]),
            None,
        )

    def challenger(self, name: str) -> Record | None:
        model = self.models.get(name, Model())
        return next((v for v in model.versions.values() if "challenger" in v["aliases"]), None)

    def find(self, name: str, trigger: Record) -> Record | None:
        """The version trained for `trigger` (a run redone after a crash is not registered twice)."""
        model = self.models.get(name, Model())
        return next((v for v in model.versions.values() if v["trigger"] == trigger), None)

    def version(self, name: str, number: int) -> Record:
        try:
            return self.models[name].versions[number]
        except KeyError:
            raise TransitionError(f"{name} has no version {number}") from None

    def promote(
        self, name: str, number: int, action: str, reason: str, decided_by: str, at: datetime
    ) -> list[Record]:
        """Make `number` the champion; the champion before it steps down to staging."""
        target = self.version(name, number)
        if target["state"] == "archived":
            raise TransitionError(f"{name} v{number} is archived")
        updates = []
        current = self.champion(name)
        if current is not None and current["version"] != number:
            updates.append(
                _update(current, "staging", [], "replaced", f"v{number} promoted", decided_by, at)
            )
        updates.append(_update(target, "production", ["champion"], action, reason, decided_by, at))
        return updates

    def rollback(
        self, name: str, number: int | None, reason: str, decided_by: str, at: datetime
    ) -> list[Record]:
        """Back to `number`, or to the champion before the current one: the version that
        stepped down to staging last."""
        if number is None:
            model = self.models.get(name, Model())
            staging = [n for n, v in model.versions.items() if v["state"] == "staging"]
            if not staging:
                raise TransitionError(f"{name} has no earlier champion to roll back to")
            number = max(staging, key=model.changed.__getitem__)
        return self.promote(name, number, "rolled_back", reason, decided_by, at)

    def register(self, version: Record, decided_by: str, at: datetime) -> list[Record]:
        """A new version, in state candidate: numbered after every version of its name."""
        number = self.next_version(version["model_name"])
        fresh = {**version, "version": number, "state": "candidate", "aliases": []}
        return [_update(fresh, "candidate", [], "registered", "a new candidate", decided_by, at)]

    def reject(
        self, name: str, number: int, reason: str, decided_by: str, at: datetime, challenger: bool
    ) -> list[Record]:
        """`number` does not become champion; as the challenger, it is still scored in shadow."""
        target = self.version(name, number)
        if not challenger:
            return [_update(target, "rejected", [], "rejected", reason, decided_by, at)]
        return self._challenger(target, "rejected", "challenger", reason, decided_by, at)

    def hold(
        self, name: str, number: int, reason: str, decided_by: str, at: datetime
    ) -> list[Record]:
        """`number` passed the gate while promotion is paused: the challenger, still a
        candidate, until an operator promotes it."""
        return self._challenger(
            self.version(name, number), "candidate", "held", reason, decided_by, at
        )

    def _challenger(
        self, target: Record, state: str, action: str, reason: str, decided_by: str, at: datetime
    ) -> list[Record]:
        updates = []
        current = self.challenger(target["model_name"])
        if current is not None and current["version"] != target["version"]:
            aliases = [a for a in current["aliases"] if a != "challenger"]
            updates.append(
                _update(
                    current,
                    current["state"],
                    aliases,
                    "replaced",
                    f"v{target['version']} is the challenger",
                    decided_by,
                    at,
                )
            )
        updates.append(_update(target, state, ["challenger"], action, reason, decided_by, at))
        return updates

    def paused(self, name: str) -> bool:
        return self.models.get(name, Model()).paused

    def pause(
        self, name: str, pause: bool, reason: str, decided_by: str, at: datetime
    ) -> list[Record]:
        """Pause (or resume) automatic promotion of `name`."""
        model = self.models.get(name)
        if model is None or not model.versions:
            raise TransitionError(f"{name} has no versions yet")
        if model.paused == pause:
            raise TransitionError(
                f"{name}'s promotion is already {'paused' if pause else 'automatic'}"
            )
        latest = model.versions[max(model.versions)]  # carried as it is: the record needs one
        action = "paused" if pause else "resumed"
        return [_update(latest, latest["state"], latest["aliases"], action, reason, decided_by, at)]

    def archive(
        self, name: str, number: int, reason: str, decided_by: str, at: datetime
    ) -> list[Record]:
        target = self.version(name, number)
        if "champion" in target["aliases"]:
            raise TransitionError(f"{name} v{number} is the champion: promote another first")
        return [_update(target, "archived", [], "archived", reason, decided_by, at)]

    def carry_out(self, order: Record, at: datetime) -> list[Record]:
        """The transitions an operator's tideline.RegistryCommand asks for.

        Raises TransitionError when it cannot be carried out (unknown version, archived...).
        """
        name, number = order["model_name"], order["version"]
        reason = order["reason"] or f"{order['action']} by {order['requested_by']}"
        by = order["requested_by"]
        if order["action"] == "promote":
            if number is None:
                raise TransitionError("promote needs a version")
            updates = self.promote(name, number, "promoted", reason, by, at)
        elif order["action"] == "rollback":
            updates = self.rollback(name, number, reason, by, at)
        elif order["action"] == "archive":
            if number is None:
                raise TransitionError("archive needs a version")
            updates = self.archive(name, number, reason, by, at)
        elif order["action"] in ("pause", "resume"):
            updates = self.pause(name, order["action"] == "pause", reason, by, at)
        else:
            raise TransitionError(
                f"unknown action {order['action']!r}: promote, rollback, archive, pause or resume"
            )
        # the command's id names its updates, so whoever sent it can find the outcome
        return [u | {"update_id": f"{order['command_id']}-{i}"} for i, u in enumerate(updates)]

    def listing(self) -> list[Record]:
        """Every version of every model, by name and version."""
        return [
            model.versions[number]
            for _, model in sorted(self.models.items())
            for number in sorted(model.versions)
        ]


def key(update: Record) -> str:
    """The record's Kafka key: one per version (`name:version`), and one for the model's
    promotion policy, so compaction keeps the latest of each."""
    model = update["model"]
    if update["action"] in POLICY:
        return f"{model['model_name']}:promotion"
    return f"{model['model_name']}:{model['version']}"


def _update(
    version: Record,
    state: str,
    aliases: list[str],
    action: str,
    reason: str,
    decided_by: str,
    at: datetime,
) -> Record:
    changed = copy.deepcopy(version)
    changed["state"], changed["aliases"] = state, aliases
    return {
        "update_id": uuid.uuid4().hex,
        "action": action,
        "model": changed,
        "reason": reason,
        "decided_by": decided_by,
        "at": at,
    }
