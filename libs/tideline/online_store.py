"""The online store: each entity's latest feature vector in Redis, for request-time serving.

One string key per entity holds its newest vector (the values the stream job put on
`features`, as compact JSON: decoding Avro cost ten times more per read) behind a
fixed-width (event time, offset) prefix. Writes go through one Lua script that
compares that prefix and writes in the same atomic step, so a late or replayed
vector never overwrites a newer one. Each key expires the feature set's `ttl` after
its event time. Reads are one GET or one MGET.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import orjson
import redis
import redis.asyncio

from tideline.durations import millis
from tideline.features import Aggregation
from tideline.project import Project
from tideline.settings import Settings

# "%016d%020d": event time ms, then offset; fixed width, so strings compare as numbers.
_GUARD = 36

# KEYS: one per entity. ARGV: value, expire-at ms, for each key in turn.
WRITE_SCRIPT = f"""
local written = 0
for i, key in ipairs(KEYS) do
  local value = ARGV[2 * i - 1]
  local current = redis.call('GET', key)
  if not current or string.sub(current, 1, {_GUARD}) <= string.sub(value, 1, {_GUARD}) then
    redis.call('SET', key, value, 'PXAT', ARGV[2 * i])
    written = written + 1
  end
end
return written
"""


@dataclass(frozen=True)
class Entry:
    """One entity's vector as of one event."""

    entity: str
    event_id: str
    t: int  # event time, ms
    offset: int  # of the event on `events`: breaks ties between equal event times
    values: dict[str, Any]


class OnlineFeatures(NamedTuple):  # a NamedTuple: built on every read, it must be cheap
    entity: str
    values: dict[str, Any]
    event_time: datetime | None  # None: the entity has no live vector; values are defaults
    feature_version: str | None
    event_id: str | None


def _default(feature: Any) -> Any:
    """What an empty window holds: no events counted, nothing summed, no mean."""
    return feature.spec.empty() if isinstance(feature, Aggregation) else None


class Layout:
    """Where a project's vectors live in Redis and how they are encoded there."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.prefix = f"{settings.topic_prefix}{project.name}:"
        self.ttl_ms = millis(project.features.ttl)
        self.version = project.features.version
        self.defaults = {f.name: _default(f) for f in project.features.all}

    def key(self, entity: str) -> str:
        return self.prefix + entity

    def script_args(self, entries: Sequence[Entry]) -> tuple[list[str], list[bytes | int]]:
        keys: list[str] = []
        argv: list[bytes | int] = []
        for entry in entries:
            keys.append(self.key(entry.entity))
            stored = {"e": entry.event_id, "t": entry.t, "v": self.version, "f": entry.values}
            guard = b"%016d%020d" % (entry.t, entry.offset)
            argv.append(guard + orjson.dumps(stored))
            argv.append(entry.t + self.ttl_ms)
        return keys, argv

    def features(self, entity: str, stored: bytes | None) -> OnlineFeatures:
        if stored is None:
            return OnlineFeatures(entity, dict(self.defaults), None, None, None)
        record = orjson.loads(stored[_GUARD:])
        at = datetime.fromtimestamp(record["t"] / 1000, UTC)
        return OnlineFeatures(entity, record["f"], at, record["v"], record["e"])


class OnlineStore:
    """Reads (and, for tools and tests, writes) a project's online features; one per thread."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.layout = Layout(settings, project)
        # One connection, no pool: a pool costs 20 µs a read. Not for sharing across threads.
        self.client = redis.Redis.from_url(settings.redis_url, single_connection_client=True)
        self._write = self.client.register_script(WRITE_SCRIPT)

    def get(self, entities: Sequence[str]) -> list[OnlineFeatures]:
        """Each entity's latest values; an entity without any gets the defaults."""
        if len(entities) == 1:
            return [self.layout.features(entities[0], self._get(self.layout.key(entities[0])))]
        keys = [self.layout.key(e) for e in entities]
        stored = cast(list[bytes | None], self.client.mget(keys))  # bytes: no decode_responses
        return [self.layout.features(e, s) for e, s in zip(entities, stored, strict=True)]

    def _get(self, key: str) -> bytes | None:
        # Straight on the connection: redis-py's command path costs 15 µs more, a tenth
        # of a read. On a broken connection, the full path reconnects and retries.
        connection = self.client.connection
        assert connection is not None  # a single-connection client always has one
        try:
            connection.send_command("GET", key)  # type: ignore[no-untyped-call]  # unannotated in redis-py
            return cast(bytes | None, connection.read_response())
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()  # type: ignore[no-untyped-call]
            return cast(bytes | None, self.client.get(key))

    def write(self, entries: Sequence[Entry]) -> int:
        """Write where newer; returns how many keys were written."""
        keys, argv = self.layout.script_args(entries)
        return int(self._write(keys=keys, args=argv)) if keys else 0

    def close(self) -> None:
        self.client.close()


class OnlineWriter:
    """The stream job's side: asyncio, one script call per batch."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.layout = Layout(settings, project)
        self.client = redis.asyncio.Redis.from_url(settings.redis_url)
        self._write = self.client.register_script(WRITE_SCRIPT)

    async def write(self, entries: Sequence[Entry]) -> int:
        keys, argv = self.layout.script_args(entries)
        return int(await self._write(keys=keys, args=argv)) if keys else 0

    async def close(self) -> None:
        await self.client.aclose()
