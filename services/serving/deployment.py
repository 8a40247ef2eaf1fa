"""The models in use: the champion, and the challenger in shadow, swapped as `models.updated` says.

Swaps are single assignments on the event loop, read once per batch by the stream
and once per request by HTTP: a batch is scored whole by the version it started with.
"""

import asyncio
import logging
from contextlib import aclosing
from typing import Literal

from tideline.errors import TidelineError
from tideline.models import ModelClient
from tideline.project import Project
from tideline.registry import Record, Registry
from tideline.scoring import Scorer

from services.serving import metrics

log = logging.getLogger(__name__)

Role = Literal["champion", "challenger"]


class Deployment:
    def __init__(self, client: ModelClient, project: Project, name: str, shadow: bool) -> None:
        self.client, self.project, self.name, self.shadow = client, project, name, shadow
        self.champion: Scorer | None = None
        self.challenger: Scorer | None = None
        self.ready = asyncio.Event()  # set once a champion is loaded

    async def follow(self) -> None:
        """Load what the registry says, now and on every update; runs until cancelled."""
        async with aclosing(self.client.states()) as states:
            async for state in states:
                await self.update(state)

    async def update(self, state: Registry) -> None:
        champion = state.champion(self.name)
        # a champion that loses its alias without a successor keeps serving: better than none
        if champion is not None:
            self.champion = await self._wanted(champion, self.champion, "champion")
        challenger = state.challenger(self.name) if self.shadow else None
        if challenger is None:
            self.challenger = None
            metrics.VERSION.labels(self.name, "challenger").set(0)
        else:
            self.challenger = await self._wanted(challenger, self.challenger, "challenger")
        if self.champion is not None:
            self.ready.set()

    async def _wanted(self, version: Record, current: Scorer | None, role: Role) -> Scorer | None:
        if current is not None and current.number == version["version"]:
            return current
        try:
            scorer = Scorer(await self.client.load_version(version), self.project)
        except TidelineError as exc:
            metrics.LOAD_FAILURES.labels(self.name, str(version["version"])).inc()
            log.error("cannot load %s v%s as %s: %s", self.name, version["version"], role, exc)
            return current
        metrics.SWAPS.labels(self.name, str(scorer.number), role).inc()
        metrics.VERSION.labels(self.name, role).set(scorer.number)
        log.info(
            "%s is now %s v%d (was %s)",
            role,
            self.name,
            scorer.number,
            "none" if current is None else f"v{current.number}",
        )
        return scorer
