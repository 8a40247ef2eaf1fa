"""Model artifacts: skops bytes, addressed by sha256, in chunks on the compacted artifacts topic.

Any subscriber fetches a model with nothing but Kafka access: the chunks are keyed
`sha256:index`, so compaction keeps every piece. Loading verifies the sha256 before
anything is deserialized, and skops (never pickle) builds only types from the
libraries models are made of.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import skops.io

from tideline import catalog, kafka, streams
from tideline.errors import TidelineError
from tideline.settings import Settings

TOPIC = catalog.topic("models.artifacts")
CHUNK_BYTES = 512 * 1024  # well under the topic's 1 MiB records
FORMAT = "skops"
# Types a model may be made of; anything else in an artifact is refused, not built.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "river.", "builtins.", "collections.")


class ArtifactError(TidelineError):
    """An artifact that is incomplete, does not match its sha256, or holds untrusted types."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump(model: Any) -> bytes:
    return bytes(skops.io.dumps(model))


def load(data: bytes, expected_sha256: str) -> Any:
    """The model in `data`, once its sha256 matches and every type in it is trusted."""
    found = sha256(data)
    if found != expected_sha256:
        raise ArtifactError(f"artifact sha256 is {found}, expected {expected_sha256}: refused")
    types = skops.io.get_untrusted_types(data=data)
    untrusted = [t for t in types if not t.startswith(TRUSTED_MODULES)]
    if untrusted:
        raise ArtifactError(f"artifact holds types outside the trusted libraries: {untrusted}")
    return skops.io.loads(data, trusted=types)


def chunks(data: bytes, settings: Settings) -> tuple[dict[str, Any], list[streams.Produce]]:
    """The ArtifactRef record and the chunk records that carry `data`."""
    digest = sha256(data)
    pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    bound = TOPIC.bind(settings)
    topic = bound.name
    records = [
        streams.Produce(
            topic,
            f"{digest}:{index}".encode(),
            bound.encode(
                {
                    "sha256": digest,
                    "index": index,
                    "count": len(pieces),
                    "total_size": len(data),
                    "format": FORMAT,
                    "data": piece,
                },
            ),
        )
        for index, piece in enumerate(pieces)
    ]
    ref = {
        "topic": topic,
        "sha256": digest,
        "size": len(data),
        "chunks": len(pieces),
        "format": FORMAT,
    }
    return ref, records


def assemble(ref: dict[str, Any], found: Sequence[dict[str, Any]]) -> bytes:
    """The artifact `ref` names from its chunk records (the newest of each index wins)."""
    by_index = {c["index"]: c["data"] for c in found if c["sha256"] == ref["sha256"]}
    missing = sorted(set(range(ref["chunks"])) - set(by_index))
    if missing:
        raise ArtifactError(f"artifact {ref['sha256']} lacks chunks {missing}")
    data = b"".join(by_index[i] for i in range(ref["chunks"]))
    if len(data) != ref["size"] or sha256(data) != ref["sha256"]:
        raise ArtifactError(f"artifact {ref['sha256']} does not match its sha256: refused")
    return data


async def fetch(settings: Settings, ref: dict[str, Any]) -> bytes:
    """Read `ref`'s chunks back from the artifacts topic and verify them."""
    bound = TOPIC.bind(settings)
    if ref["topic"] != bound.name:
        raise ArtifactError(f"artifacts come from {bound.name}, not {ref['topic']}")
    prefix = f"{ref['sha256']}:".encode()
    found = []
    ranges = await streams.offset_ranges(settings, ref["topic"])
    async for message in streams.read_ranges(settings, ranges):
        if message.key is not None and message.key.startswith(prefix):
            found.append(bound.decode(message.value))
    return assemble(ref, found)


async def publish(settings: Settings, data: bytes) -> dict[str, Any]:
    """Write `data` to the artifacts topic, acknowledged; returns its ArtifactRef record."""
    ref, records = chunks(data, settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for record in records:
            await producer.send(record.topic, record.value, key=record.key)
        await producer.flush()
    finally:
        await producer.stop()
    return ref
