"""Avro compatibility of `schemas/` against a baseline revision, both ways
(`tideline.compatibility`): a new reader reads old records, an old reader new ones.
"""

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from fastavro.schema import load_schema
from tideline.compatibility import incompatibility
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


def check(name: str) -> str | None:
    """Compare the working tree's schema `name` with its baseline, both ways; None when
    compatible."""
    revision = baseline_revision(name)
    if revision is None:
        return None  # not committed yet: nothing released to stay compatible with
    with tempfile.TemporaryDirectory() as tmp:
        old = _expanded(schemas_at(revision, Path(tmp)), name)
    new = _expanded(schema_dir(), name)
    if problem := incompatibility(new, old):
        return f"backward: {problem}"
    if problem := incompatibility(old, new):
        return f"forward: {problem}"
    return None
