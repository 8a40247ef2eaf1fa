"""Feature definitions over time: the compacted `featurestore.definitions` topic, where each
feature store puts the feature set it runs, and what changed between two of them.

Window state and vectors carry only a definition's version (a hash); this is where a
version is read back as the definition it names, so an operator sees what a change
does before and after it lands (`tideline features describe`).
"""

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from tideline import catalog, serde, streams
from tideline.durations import render
from tideline.errors import DecodeError
from tideline.features import Aggregation, FeatureSet, Transform
from tideline.project import Project
from tideline.settings import Settings

TOPIC = catalog.topic("featurestore.definitions")
STATE = catalog.topic("featurestore.state")


def entry(project: Project) -> tuple[bytes, bytes]:
    """(key, value) of the project's feature set on the topic."""
    features = project.features
    value = {
        "project": project.name,
        "version": features.version,
        "definition": json.dumps(features.model_dump(mode="json"), sort_keys=True),
        "registered_at": int(time.time() * 1000),
    }
    return f"{project.name}:{features.version}".encode(), serde.encode(TOPIC.schema(), value)


def _span(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size:.0f}{unit}"
    return render(value)


def what(feature: Transform | Aggregation) -> str:
    """What a feature computes, in a few words: `mean of amount over sliding 1h`."""
    of = f" of {feature.field}" if feature.field else ""
    if isinstance(feature, Transform):
        return f"{feature.kind}{of}"
    window = feature.window
    every = f" every {_span(window.step)}" if window.step is not None else ""
    return f"{feature.kind}{of} over {window.kind} {_span(window.size)}{every}"


def changes(old: FeatureSet, new: FeatureSet) -> list[tuple[str, str]]:
    """(feature or setting, how it changed) from `old` to `new`."""
    before = {f.name: what(f) for f in old.all}
    after = {f.name: what(f) for f in new.all}
    found = [(n, f"added: {after[n]}") for n in after if n not in before]
    found += [(n, f"removed: {before[n]}") for n in before if n not in after]
    found += [
        (n, f"{before[n]} → {after[n]}") for n in after if before.get(n, after[n]) != after[n]
    ]
    for setting in ("allowed_lateness", "ttl"):
        was, now = getattr(old, setting), getattr(new, setting)
        if was != now:
            found.append((setting, f"{_span(was)} → {_span(now)}"))
    return found


@dataclass(frozen=True)
class Known:
    """A definition a feature store ran."""

    features: FeatureSet
    registered_at: datetime


async def history(settings: Settings, project: str) -> dict[str, Known]:
    """Every feature set of `project` some feature store ran, by version; records that are
    no definition of it are left out."""
    bound = TOPIC.bind(settings)
    found: dict[str, Known] = {}
    async for message in streams.read_back(settings, bound.name, 0):
        try:
            record = bound.decode(message.value)
            features = FeatureSet.model_validate_json(record["definition"])
        except (DecodeError, ValidationError):
            continue
        if record["project"] == project and features.version == record["version"]:
            found[record["version"]] = Known(features, record["registered_at"])
    return found


async def state_versions(settings: Settings) -> Counter[str | None]:
    """Entities of the feature store's window state by the definition version it was
    built for (None: before versions were kept; "unreadable": not a state)."""
    bound = STATE.bind(settings)
    latest: dict[bytes | None, str | None] = {}
    async for message in streams.read_back(settings, bound.name, 0):
        try:
            latest[message.key] = bound.decode(message.value)["definition"]
        except DecodeError:
            latest[message.key] = "unreadable"
    return Counter(latest.values())
