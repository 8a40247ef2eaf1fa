"""The online store: each entity's latest feature vector in Redis, for request-time serving.

One string key per entity holds its newest vector (the values the stream job put on
`features`, as compact JSON: decoding Avro cost ten times more per read) behind a
fixed-width (event time, offset) prefix. Writes go through one Lua script that
compares that prefix and writes in the same atomic step, so a late or replayed
vector never overwrites a newer one. Each key expires the feature set's `ttl` after
its event time. Reads are one GET or one MGET.

The feature store also keeps one mark per `events` partition (never expiring): the
newest offset of that partition it has written for. The same script compares each
mark with the one the writer expects before writing; a missing or lower mark means
Redis lost writes (a restart without persistence, a flush, a failover) and the
writer rebuilds that partition's entities before its batch goes in.
"""

from collections.abc import Iterable, Mapping, Sequence
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

# KEYS: the marks of n partitions, then one per entity. ARGV: n; each mark's expected
# offset (-1: none expected), then its new offset; then value, expire-at ms per entity.
# Returns {keys written, index of each partition whose mark fell short}: if any did,
# nothing is written.
WRITE_SCRIPT = f"""
local n = tonumber(ARGV[1])
local lost = {{}}
for i = 1, n do
  local expected = tonumber(ARGV[1 + i])
  if expected >= 0 then
    local mark = redis.call('GET', KEYS[i])
    if not mark or tonumber(mark) < expected then
      table.insert(lost, i - 1)
    end
  end
end
if #lost > 0 then
  return {{0, unpack(lost)}}
end
for i = 1, n do
  local mark = redis.call('GET', KEYS[i])
  local new = tonumber(ARGV[1 + n + i])
  if not mark or tonumber(mark) < new then
    redis.call('SET', KEYS[i], new)
  end
end
local written = 0
for j = n + 1, #KEYS do
  local at = 2 * n + 2 + 2 * (j - n - 1)
  local value = ARGV[at]
  local current = redis.call('GET', KEYS[j])
  if not current or string.sub(current, 1, {_GUARD}) <= string.sub(value, 1, {_GUARD}) then
    redis.call('SET', KEYS[j], value, 'PXAT', ARGV[at + 1])
    written = written + 1
  end
end
return {{written}}
"""


@dataclass(frozen=True)
class Entry:
    """One entity's vector as of one event."""

    entity: str
    event_id: str
    t: int  # event time, ms
    offset: int  # of the event on `events`: breaks ties between equal event times
    values: dict[str, Any]


def newest(entries: Iterable[Entry], into: dict[str, Entry]) -> dict[str, Entry]:
    """`into` with each entity's newest of `entries` by (event time, offset), as the write
    script's guard orders them: what Redis ends up holding."""
    for entry in entries:
        seen = into.get(entry.entity)
        if seen is None or (seen.t, seen.offset) <= (entry.t, entry.offset):
            into[entry.entity] = entry
    return into


class Mark(NamedTuple):
    """One `events` partition's mark in a write: the offset Redis must hold already
    (-1: none expected), and the one it holds after."""

    expected: int
    new: int


class Written(NamedTuple):
    keys: int  # keys written
    lost: list[int]  # partitions whose mark fell short: nothing was written


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

    def mark_key(self, partition: int) -> str:
        # `~`, not `:`: no entity's key can be a mark's
        return f"{self.prefix[:-1]}~partition:{partition}"

    def script_args(
        self, entries: Sequence[Entry], marks: Mapping[int, Mark] = {}
    ) -> tuple[list[str], list[bytes | int]]:
        keys: list[str] = [self.mark_key(p) for p in marks]
        argv: list[bytes | int] = [len(marks)]
        argv += [m.expected for m in marks.values()] + [m.new for m in marks.values()]
        for entry in entries:
            keys.append(self.key(entry.entity))
            stored = {"e": entry.event_id, "t": entry.t, "v": self.version, "f": entry.values}
            guard = b"%016d%020d" % (entry.t, entry.offset)
            argv.append(guard + orjson.dumps(stored))
            argv.append(entry.t + self.ttl_ms)
        return keys, argv

    @staticmethod
    def written(reply: list[int], marks: Mapping[int, "Mark"]) -> Written:
        partitions = list(marks)
        return Written(int(reply[0]), [partitions[int(i)] for i in reply[1:]])

    def features(self, entity: str, stored: bytes | None) -> OnlineFeatures:
        if stored is None:
            return OnlineFeatures(entity, dict(self.defaults), None, None, None)
        record = orjson.loads(stored[_GUARD:])
        if record["v"] != self.version:  # of another definition: its values may not exist now
            return OnlineFeatures(entity, dict(self.defaults), None, None, None)
        at = datetime.fromtimestamp(record["t"] / 1000, UTC)
        return OnlineFeatures(entity, record["f"], at, record["v"], record["e"])


class OnlineStore:
    """Reads (and, for tools and tests, writes) a project's online features; one per thread."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.layout = Layout(settings, project)
        # One connection, no pool: a pool costs 20 µs a read. Not for sharing across threads.
        self.client = redis.Redis.from_url(
            settings.redis_url, single_connection_client=True, **settings.redis_credentials
        )
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
        return int(self._write(keys=keys, args=argv)[0]) if keys else 0

    def close(self) -> None:
        self.client.close()


class OnlineWriter:
    """The stream job's side: asyncio, one script call per batch."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.layout = Layout(settings, project)
        self.client = redis.asyncio.Redis.from_url(settings.redis_url, **settings.redis_credentials)
        self._write = self.client.register_script(WRITE_SCRIPT)

    async def write(self, entries: Sequence[Entry], marks: Mapping[int, Mark] = {}) -> Written:
        """Write where newer, unless a partition's mark shows Redis lost writes."""
        if not entries and not marks:
            return Written(0, [])
        keys, argv = self.layout.script_args(entries, marks)
        return self.layout.written(await self._write(keys=keys, args=argv), marks)

    async def marks(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """Each partition's mark as Redis holds it now (None: none)."""
        if not partitions:
            return {}
        found = await self.client.mget([self.layout.mark_key(p) for p in partitions])
        return {p: None if m is None else int(m) for p, m in zip(partitions, found, strict=True)}

    async def close(self) -> None:
        await self.client.aclose()
