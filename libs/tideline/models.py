"""For business systems (and our serving service): follow `models.updated`, get a ready model.

Nothing but Kafka access and the registry's public key is needed: the versions come
from the compacted `models.updated` topic, each record taken only once its signature
is the registry's (`tideline.signing`), the bytes from `models.artifacts`, and a model
is loaded only after its sha256 matches the version record and every type in it is
trusted.
"""

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from tideline import artifacts, catalog, signing, streams
from tideline.errors import DecodeError
from tideline.registry import Record, Registry, TransitionError
from tideline.settings import Settings

UPDATES = catalog.topic("models.updated")
UNREADABLE = Counter(
    "tideline_model_updates_unreadable_total",
    "models.updated records that could not be read, skipped (logged with their offsets).",
)
REFUSED = Counter(
    "tideline_model_updates_refused_total",
    "models.updated records not signed by the registry's key, skipped (logged): unsigned,"
    " bad_signature, no_public_key, bad_key.",
    ["reason"],
)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: Record  # the tideline.ModelVersion record it was loaded from
    model: Any

    @property
    def name(self) -> str:
        return str(self.version["model_name"])

    @property
    def number(self) -> int:
        return int(self.version["version"])


class ModelClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bound = UPDATES.bind(settings)
        self.topic = self.bound.name
        self.verifier = signing.Verifier(settings)

    async def registry(self) -> Registry:
        """Every model's versions as of now, read from `models.updated`."""
        async with aclosing(self.states()) as states:
            return await anext(states)

    async def load(self, name: str, alias: str = "champion") -> LoadedModel:
        """The version of `name` that holds `alias`, fetched, verified and loaded."""
        state = await self.registry()
        found = [v for v in state.listing() if v["model_name"] == name and alias in v["aliases"]]
        if not found:
            raise TransitionError(f"{name} has no {alias}")
        return await self.load_version(found[-1])

    async def load_version(self, version: Record) -> LoadedModel:
        ref = version["artifact"]
        data = await artifacts.fetch(self.settings, ref)  # refuses any place but the topic
        return LoadedModel(version, artifacts.load(data, ref["sha256"]))

    async def states(self) -> AsyncGenerator[Registry, None]:
        """The registry as of now, then again after each new update: what a service that
        follows the champion acts on, without acting on every past version first."""
        state = Registry()
        ranges = await streams.offset_ranges(self.settings, self.topic)
        async for message in streams.read_ranges(self.settings, ranges):
            if (update := self._readable(message)) is not None:
                state.apply(update)
        yield state
        start = {r.partition: r.end for r in ranges}
        async with aclosing(streams.follow(self.settings, self.topic, start)) as messages:
            async for message in messages:
                if (update := self._readable(message)) is not None:
                    state.apply(update)
                    yield state

    async def updates(self) -> AsyncGenerator[Record, None]:
        """Every `models.updated` record from the start, then each new one as it comes."""
        async with aclosing(streams.follow(self.settings, self.topic)) as messages:
            async for message in messages:
                if (update := self._readable(message)) is not None:
                    yield update

    def _readable(self, message: streams.Message) -> Record | None:
        """The update in `message`; None, logged and counted, for one that is unsigned or
        does not decode: the topic is compacted and kept for ever, so a record that
        stopped its readers once would stop every reader, every start, until someone
        wrote a tombstone. A refused record changes nothing: the model in use stays."""
        try:
            self.verifier.verify(message.key, message.value, message.headers)
            return self.bound.decode(message.value)
        except signing.SignatureError as exc:  # checked first: nobody's bytes are decoded
            REFUSED.labels(exc.reason).inc()
            problem = f"refused an update: {exc}"
        except DecodeError as exc:
            UNREADABLE.inc()
            problem = f"skipped an unreadable update: {exc}"
        log.error("%s/%d@%d: %s", message.topic, message.partition, message.offset, problem)
        return None
