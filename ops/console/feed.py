"""The console's one reader of Kafka and of the services' /metrics, and its fan-out.

One task folds the loop's topics into the `View` (what they hold now, in time order,
then each new record); another scrapes every service's endpoint. Each open page has a
queue of serialized changes; a page that falls behind is dropped, and its browser
reconnects and starts again from a snapshot. If the reader fails (the broker gone, a
topic deleted), it starts again from nothing once it can, and so do the pages.
"""

import asyncio
import contextlib
import json
import logging
from contextlib import aclosing
from typing import Any

from aiokafka.errors import KafkaError
from tideline.errors import TidelineError
from tideline.settings import Settings

from ops import records, scrape
from ops.console import health
from ops.console.settings import ConsoleSettings
from ops.console.view import Change, View

log = logging.getLogger(__name__)

TOPICS = ("monitor.metrics", "monitor.drift", "trainer.status", "models.updated", "dead-letters")
PAGE_QUEUE = 2000  # changes a page may fall behind by
RETRY_S = 2.0  # between a failed reader and the next try


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class Feed:
    def __init__(self, settings: Settings, own: ConsoleSettings) -> None:
        self.settings, self.own = settings, own
        self.view = View(points=own.points)
        self.caught_up = asyncio.Event()  # the topics' history is folded in
        self.pages: set[asyncio.Queue[str | None]] = set()  # None: the stream ends
        self._scrapes: dict[str, scrape.Scrape | None] = {}

    async def run(self) -> None:
        """Until cancelled; raises what stopped a reader."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._records())
            group.create_task(self._health())

    def open_page(self) -> tuple[str, asyncio.Queue[str | None]]:
        """A page's first message (everything so far) and its queue of what follows."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(PAGE_QUEUE)
        self.pages.add(queue)
        return _json({"kind": "snapshot", "data": self.view.snapshot()}), queue

    def close_page(self, queue: asyncio.Queue[str | None]) -> None:
        self.pages.discard(queue)

    def _send(self, changes: list[Change]) -> None:
        if not self.caught_up.is_set() or not self.pages:
            return  # a page opened later gets it in its snapshot
        for change in changes:
            message = _json({"kind": change.kind, "data": change.data})
            for queue in list(self.pages):
                try:
                    queue.put_nowait(message)
                except asyncio.QueueFull:  # too slow: its stream ends, the browser
                    self.pages.discard(queue)  # reconnects and starts from a snapshot

    async def _records(self) -> None:
        while True:
            try:
                await self._fold()
            except (KafkaError, OSError, TidelineError) as exc:
                log.error("reading the topics failed, again in %.0f s: %s", RETRY_S, exc)
            self._restart()
            await asyncio.sleep(RETRY_S)

    async def _fold(self) -> None:
        feed = records.merged(self.settings, TOPICS, caught_up=self.caught_up)
        async with aclosing(feed) as found:
            async for seen in found:
                if seen.record is None:
                    log.warning("unreadable record on %s: %s", seen.topic, seen.error)
                    changes = self.view.unreadable_record(seen.topic, seen.error or "")
                else:
                    changes = self.view.apply(seen.topic, seen.record)
                self._send(changes)

    def _restart(self) -> None:
        """From nothing: a new view, and every page's stream ended (it reconnects)."""
        self.view = View(points=self.own.points, health=self.view.health)
        self.caught_up.clear()
        for queue in list(self.pages):
            self.pages.discard(queue)
            with contextlib.suppress(asyncio.QueueFull):  # a full one ends once drained
                queue.put_nowait(None)

    async def _health(self) -> None:
        while True:
            found = await asyncio.gather(
                *(asyncio.to_thread(scrape.scrape, url) for url in self.own.metrics.values())
            )
            summary = {}
            for (name, url), now in zip(self.own.metrics.items(), found, strict=True):
                summary[name] = health.summarize(name, url, now, self._scrapes.get(name))
                self._scrapes[name] = now
            self._send(self.view.set_health(summary))
            await asyncio.sleep(self.own.scrape_interval.total_seconds())
