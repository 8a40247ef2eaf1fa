"""The online line: a model of a family that keeps learning (`learners.Library.online`),
continued on the labels written since its last step.

Each step learns the labelled events from where the last one stopped, holds the newest
share out for the gate, and is offered to the registry like any run's candidate. The
published step is the line's checkpoint: a restarted trainer continues the newest
version of the family in the registry from the start of that version's holdout (the
first events it has not learnt), so a restart loses no label, only the step in flight.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tideline import learners, training
from tideline.errors import TidelineError
from tideline.models import ModelClient
from tideline.project import Project
from tideline.settings import Settings

from services.trainer.triggers import Trigger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Line:
    model: Any | None  # None: its first step trains one on the trainer's window
    since: datetime | None  # the first event time it has not learnt
    parent: str  # what it continues: "v7", a candidate id, or "" for none


def check(family: str) -> None:
    """LearnerError unless `family` is one that learns online: at start."""
    learners.parameters(family, {})
    found = learners.FAMILIES[family]
    if not found.library.online:
        raise learners.LearnerError(
            f"online family {family} is {found.library.name}'s, which does not learn online"
        )


def start_of(holdout: training.TrainingSet) -> datetime | None:
    """The first event time of a step's holdout: where the next step starts learning."""
    times = holdout.frame["event_time"]
    return None if times.empty else times.min().to_pydatetime()


class Steps:
    """A step is due once `labels` labels have been written (end offsets) since the last."""

    def __init__(self, labels: int, seen: int) -> None:
        self.labels, self._seen = labels, seen

    def due(self, seen: int) -> Trigger | None:
        if seen - self._seen < self.labels:
            return None
        self._seen = seen
        return Trigger("online", f"{seen} labels written")


async def restore(settings: Settings, project: Project, name: str, family: str) -> Line:
    """The line as the registry has it: its newest version of `family`, or a new line."""
    client = ModelClient(settings)
    mine = [
        v
        for v in (await client.registry()).listing()
        if v["model_name"] == name and v["family"] == family
    ]
    if not mine:
        return Line(None, None, "")
    newest = mine[-1]
    try:
        holdout = await training.rebuild(settings, project, newest["holdout"])
        loaded = await client.load_version(newest)
    except TidelineError as exc:  # past retention, a missing or untrusted artifact
        log.warning("the online line starts over: v%d cannot resume: %s", newest["version"], exc)
        return Line(None, None, "")
    log.info("the online line continues v%d", newest["version"])
    return Line(loaded.model, start_of(holdout), f"v{newest['version']}")
