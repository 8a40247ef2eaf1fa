"""`tideline dlq`: the dead-letter topic for operators: which letters, and resending them.

A replay sends each chosen letter's original key, value and headers back to the topic
it came from, once per run, with a header naming the letter; a letter whose value was
cut to fit (`tideline.value.bytes`) cannot be resent and is skipped and counted. Once
the cause is fixed (a producer's bug, a service's), a record refused again comes back
as a new dead letter, so nothing is lost either way.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tideline import dlq, kafka, streams
from tideline.errors import DecodeError, TidelineError
from tideline.settings import Settings

# On a resent record: the dead letter it came from (`dead-letters` partition/offset).
REPLAYED_FROM = "tideline.replayed-from"


@dataclass(frozen=True)
class Select:
    """Which letters: each given field must match (a topic by its catalog or full name)."""

    service: str | None = None
    topic: str | None = None
    stage: str | None = None
    reason: str | None = None  # the error class, or the rule for a rule's refusal
    prefix: str = ""

    def __call__(self, letter: dict[str, Any]) -> bool:
        topics = None if self.topic is None else {self.topic, self.prefix + self.topic}
        return (
            (self.service is None or letter["service"] == self.service)
            and (topics is None or letter["source_topic"] in topics)
            and (self.stage is None or letter["stage"] == self.stage)
            and (self.reason is None or self.reason in (letter["error_class"], letter["rule"]))
        )


@dataclass
class Replay:
    """What a replay found and did, by source topic."""

    chosen: dict[str, int] = field(default_factory=dict)  # letters matching
    sent: int = 0
    truncated: int = 0  # cut to fit their topic: not resendable
    unreadable: int = 0  # not dead letters at all
    last_offset: int | None = None  # of the last letter looked at: where the next run starts


class ReplayError(TidelineError):
    """A replay cannot start."""


async def replay(
    settings: Settings,
    select: Select,
    start: int = 0,
    send: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Replay:
    """The letters at `start` and after (as of now) that `select` keeps: counted, and
    resent if `send`. `progress` is told (letters looked at, letters to look at)."""
    letters = dlq.TOPIC.bind(settings)
    (found,) = await streams.offset_ranges(settings, letters.name)  # one partition
    if start > found.end:
        raise ReplayError(f"{letters.name} ends at offset {found.end}; nothing from {start}")
    outcome = Replay()
    window = streams.OffsetRange(found.topic, found.partition, max(start, found.start), found.end)
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        pending = []
        async for message in streams.read_ranges(settings, [window]):
            outcome.last_offset = message.offset
            progress(message.offset + 1 - window.start, window.end - window.start)
            try:
                letter = letters.decode(message.value)
            except DecodeError:
                outcome.unreadable += 1
                continue
            if not select(letter):
                continue
            source = letter["source_topic"]
            outcome.chosen[source] = outcome.chosen.get(source, 0) + 1
            if dlq.TRUNCATED_BYTES in dict(message.headers):
                outcome.truncated += 1
                continue
            if send:
                headers = [(h["key"], h["value"]) for h in letter["headers"]]
                origin = f"{letters.name}/{message.partition}/{message.offset}".encode()
                pending.append(
                    await producer.send(
                        source,
                        letter["value"],
                        key=letter["key"],
                        partition=letter["source_partition"],
                        headers=[*headers, (REPLAYED_FROM, origin)],
                    )
                )
        for sent in pending:
            await sent
        outcome.sent = len(pending)
    return outcome
