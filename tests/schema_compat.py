"""Avro backward compatibility of `schemas/` against a baseline revision, checked by Apache's avro.

Backward: a reader with the new schema reads every record written with the old one.
"""

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.schema import load_schema
from tideline.schemas import schema_dir

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def last_release_tag() -> str | None:
    try:
        return _git("describe", "--tags", "--abbrev=0", "--match", "v*") or None
    except subprocess.CalledProcessError:
        return None


def baseline_revision(name: str) -> str | None:
    """The last release tag if the schema existed then, else the first commit that added it."""
    path = f"schemas/{name}.avsc"
    tag = last_release_tag()
    if tag and _git("ls-tree", "--name-only", tag, path):
        return tag
    added = _git("log", "--diff-filter=A", "--format=%H", "--reverse", "--", path)
    return added.splitlines()[0] if added else None


def _expanded(folder: Path, name: str) -> str:
    """The schema as one JSON document, references to other files resolved."""
    parsed = load_schema(str(folder / f"{name}.avsc"), _write_hint=False)
    return json.dumps(_strip_private(parsed))


def _strip_private(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_private(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_strip_private(v) for v in node]
    return node


def schemas_at(revision: str, into: Path) -> Path:
    for path in _git("ls-tree", "--name-only", revision, "schemas/").splitlines():
        if path.endswith(".avsc"):
            (into / Path(path).name).write_text(_git("show", f"{revision}:{path}"))
    return into


def incompatibility(reader_json: str, writer_json: str) -> str | None:
    """None if `reader_json` reads `writer_json`'s records; else what breaks."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro is untyped
    result = checker.get_compatibility(
        avro.schema.parse(reader_json), avro.schema.parse(writer_json)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = ", ".join(i.name for i in result.incompatibilities)
    return f"{kinds}: {'; '.join(sorted(result.messages))} at {', '.join(sorted(result.locations))}"


def check(name: str) -> str | None:
    """Compare the working tree's schema `name` with its baseline; None when compatible."""
    revision = baseline_revision(name)
    if revision is None:
        return None  # not committed yet: nothing released to stay compatible with
    with tempfile.TemporaryDirectory() as tmp:
        old = _expanded(schemas_at(revision, Path(tmp)), name)
    return incompatibility(_expanded(schema_dir(), name), old)
