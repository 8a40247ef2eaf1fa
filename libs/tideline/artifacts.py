"""Model artifacts: skops bytes, addressed by sha256, in chunks on the compacted artifacts topic.

Any subscriber fetches a model with nothing but Kafka access: the chunks are keyed
`sha256:index`, so compaction keeps every piece. Loading verifies the sha256 before
anything is deserialized; then every type the file names, read from its schema before
skops (never pickle) builds anything, must be on an exact allow-list: what the model
families of `tideline.learners` are made of. A module prefix is never trusted: skops
calls what a file names (`builtins.exec`, `os.system`...) with the file's arguments.
"""

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import skops.io

from tideline import catalog, kafka, learners, streams
from tideline.errors import TidelineError
from tideline.settings import Settings

TOPIC = catalog.topic("models.artifacts")
CHUNK_BYTES = 512 * 1024  # well under the topic's 1 MiB records
FORMAT = "skops"


class ArtifactError(TidelineError):
    """An artifact that is incomplete, does not match its sha256, or holds untrusted types."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump(model: Any) -> bytes:
    # deflated: a river tree's file is mostly repeated JSON, many times smaller so
    with learners.written(model) as written:
        return bytes(skops.io.dumps(written, compression=zipfile.ZIP_DEFLATED))


def types_in(data: bytes) -> set[str]:
    """Every type, function and method a skops file names, read from its schema alone."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ArtifactError(f"artifact is not a skops file: {exc}") from exc
    found, pending = set(), [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending += item
        elif isinstance(item, dict):
            pending += item.values()
            if "__loader__" in item:
                found.add(_named(item))
    return found


def _named(node: dict[str, Any]) -> str:
    module, name = node.get("__module__"), node.get("__class__")
    if not (isinstance(module, str) and isinstance(name, str)):
        raise ArtifactError(f"artifact has a {node['__loader__']!r} node without a type")
    if node["__loader__"] == "MethodNode":  # a bound method: the method counts, not its class
        content = node.get("content")
        method = content.get("func") if isinstance(content, dict) else None
        return f"{module}.{name}.{method}"
    return f"{module}.{name}"


def load(data: bytes, expected_sha256: str, also: Iterable[str] = ()) -> Any:
    """The model in `data`, once its sha256 matches and every type it names is one the
    model families are made of (or in `also`); nothing is built before both checks."""
    found = sha256(data)
    if found != expected_sha256:
        raise ArtifactError(f"artifact sha256 is {found}, expected {expected_sha256}: refused")
    types = types_in(data)
    untrusted = sorted(types - learners.trusted_types() - set(also))
    if untrusted:
        raise ArtifactError(f"artifact holds types no model family is made of: {untrusted}")
    try:
        return learners.loaded(skops.io.loads(data, trusted=sorted(types)))
    except Exception as exc:  # a malformed file must cost a refusal, not the service
        raise ArtifactError(f"artifact cannot be read: {type(exc).__name__}: {exc}") from exc


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
    if len(data) != ref["size"]:
        raise ArtifactError(
            f"artifact {ref['sha256']} is {len(data)} bytes, its record says {ref['size']}: refused"
        )
    if sha256(data) != ref["sha256"]:
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
