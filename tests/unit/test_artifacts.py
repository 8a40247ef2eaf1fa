"""Artifacts without Kafka: skops round trips, sha256 checks, trusted types, chunking."""

import contextlib
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from river import linear_model
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tideline import artifacts, learners, project, schemas, serde
from tideline.settings import Settings

from ops import synthetic

from ..projects import FAMILY_EXAMPLES

X = np.random.default_rng(0).random((60, 3))
Y = np.arange(60) % 2


def test_a_pipeline_round_trips_and_predicts_the_same() -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    data = artifacts.dump(model)
    again = artifacts.load(data, artifacts.sha256(data))
    assert (again.predict_proba(X) == model.predict_proba(X)).all()


def test_a_river_model_round_trips() -> None:
    model = linear_model.LogisticRegression()
    for x, y in zip(X, Y, strict=True):
        model.learn_one(dict(enumerate(x)), bool(y))
    data = artifacts.dump(model)
    again = artifacts.load(data, artifacts.sha256(data))
    point = {0: 0.5, 1: 0.5, 2: 0.5}
    assert again.predict_proba_one(point) == model.predict_proba_one(point)  # type: ignore[no-untyped-call]


def test_a_tampered_artifact_is_refused_before_it_is_read() -> None:
    data = artifacts.dump(LogisticRegression().fit(X, Y))
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(artifacts.ArtifactError, match="sha256"):
        artifacts.load(tampered, artifacts.sha256(data))


def test_types_from_outside_the_model_families_are_refused() -> None:
    data = artifacts.dump({"model": serde.Writers()})  # a type of ours, not a model's
    with pytest.raises(artifacts.ArtifactError, match=r"tideline\.serde\.Writers"):
        artifacts.load(data, artifacts.sha256(data))
    assert artifacts.load(data, artifacts.sha256(data), also={"tideline.serde.Writers"})


def test_chunks_reassemble_and_name_every_piece() -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB: three chunks
    ref, records = artifacts.chunks(data, Settings())
    assert (ref["chunks"], ref["size"], ref["sha256"]) == (3, len(data), artifacts.sha256(data))
    assert [r.key for r in records] == [f"{ref['sha256']}:{i}".encode() for i in range(3)]
    decoder = serde.Decoder([schemas.load("tideline.ArtifactChunk")])
    found = [decoder.decode(r.value or b"")[1] for r in reversed(records)]
    assert artifacts.assemble(ref, found) == data
    with pytest.raises(artifacts.ArtifactError, match="lacks chunks"):
        artifacts.assemble(ref, found[1:])
    bad = [dict(found[0], data=b"x" + found[0]["data"][1:]), *found[1:]]
    with pytest.raises(artifacts.ArtifactError, match="does not match its sha256"):
        artifacts.assemble(ref, bad)
    short = [dict(found[0], data=found[0]["data"][1:]), *found[1:]]
    with pytest.raises(artifacts.ArtifactError, match=f"is {len(data) - 1} bytes, its record says"):
        artifacts.assemble(ref, short)  # a size that differs is said so, not as a sha256


@pytest.mark.parametrize(("family", "path"), FAMILY_EXAMPLES)
def test_every_family_of_every_example_loads_and_scores_the_same(family: str, path: Path) -> None:
    definition = project.load(path)
    columns, task = learners.Columns.of(definition), definition.label.task
    events = synthetic.Generator(definition, entities=30, seed=1).stream(
        datetime(2026, 11, 24, tzinfo=UTC), 300, timedelta(seconds=10)
    )
    concept = synthetic.Concept(definition, seed=2)
    pairs = list(synthetic.labelled_vectors(definition, events, concept))
    x = columns.frame([vector["values"] for vector, _ in pairs])
    model = learners.make(family, task, columns, {})
    learners.fit(model, task, x, [label["payload"][definition.label.field] for _, label in pairs])
    data = artifacts.dump(model)
    assert artifacts.types_in(data) <= learners.trusted_types()
    again = artifacts.load(data, artifacts.sha256(data))
    assert learners.scores(again, task, x) == learners.scores(model, task, x)


# Crafted skops files, written as an attacker would: each names a callable that skops calls
# (ConstructorFromReduceNode) or hands back (FunctionNode, OperatorFuncNode, MethodNode).
_ids = itertools.count(1)


def _node(loader: str, dotted: str, **fields: Any) -> dict[str, Any]:
    module, _, name = dotted.rpartition(".")
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": loader,
        "__id__": next(_ids),
        **fields,
    }


def _text(value: str) -> dict[str, Any]:
    return _node("JsonNode", "builtins.str", content=json.dumps(value), is_json=True)


def _call(dotted: str, *args: dict[str, Any]) -> dict[str, Any]:
    return _node(
        "ConstructorFromReduceNode",
        dotted,
        content=_node("TupleNode", "builtins.tuple", content=list(args)),
    )


def _file(root: dict[str, Any], arrays: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "schema.json", json.dumps(root | {"protocol": 2, "_skops_version": "0.16.0"})
        )
        for name, data in (arrays or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _inside_a_model(payload: dict[str, Any]) -> bytes:
    """A genuine pipeline's file with `payload` as one of its attributes, deep inside."""
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    with zipfile.ZipFile(io.BytesIO(artifacts.dump(model))) as archive:
        root: dict[str, Any] = json.loads(archive.read("schema.json"))
        arrays = {n: archive.read(n) for n in archive.namelist() if n != "schema.json"}
    root["content"]["content"]["memory"] = payload
    return _file(root, arrays)


def _listed(*items: dict[str, Any]) -> dict[str, Any]:
    return _node("ListNode", "builtins.list", content=list(items))


# name: (the type the refusal must name, the file, for a marker path)
Exploit = Callable[[Path], dict[str, Any] | bytes]
EXPLOITS: dict[str, tuple[str, Exploit]] = {
    "exec": (
        "builtins.exec",
        lambda m: _call("builtins.exec", _text(f"open({str(m)!r}, 'w').close()")),
    ),
    "eval": (
        "builtins.eval",
        lambda m: _call("builtins.eval", _text(f"open({str(m)!r}, 'w').close()")),
    ),
    "os.system": ("os.system", lambda m: _call("os.system", _text(f"touch {m}"))),
    "subprocess.run": (
        "subprocess.run",
        lambda m: _call("subprocess.run", _listed(_text("touch"), _text(str(m)))),
    ),
    "subprocess.Popen": (
        "subprocess.Popen",
        lambda m: _call("subprocess.Popen", _listed(_text("touch"), _text(str(m)))),
    ),
    "importlib": (
        "importlib.import_module",
        lambda m: _call("importlib.import_module", _text("this")),  # prints the Zen of Python
    ),
    "__import__": ("builtins.__import__", lambda m: _call("builtins.__import__", _text("this"))),
    "getattr": ("builtins.getattr", lambda m: _node("FunctionNode", "builtins.getattr")),
    "open": ("builtins.open", lambda m: _call("builtins.open", _text(str(m)), _text("w"))),
    "operator": (
        "operator.attrgetter",
        lambda m: _node("OperatorFuncNode", "operator.attrgetter", attrs=_listed(_text("x"))),
    ),
    "a method": (
        "sklearn.pipeline.Pipeline.fit",
        lambda m: _node(
            "MethodNode", "sklearn.pipeline.Pipeline", content={"func": "fit", "obj": {}}
        ),
    ),
    "deep in a model": (
        "builtins.exec",
        lambda m: _inside_a_model(_call("builtins.exec", _text(f"open({str(m)!r}, 'w').close()"))),
    ),
}
# The ones with a side effect this test can see when skops is let to build them.
VISIBLE = {"exec", "eval", "os.system", "subprocess.run", "open", "deep in a model"}


@pytest.mark.parametrize("name", sorted(EXPLOITS))
def test_a_crafted_model_file_is_refused_before_anything_runs(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named, craft = EXPLOITS[name]
    marker = tmp_path / "ran"
    crafted = craft(marker)
    data = crafted if isinstance(crafted, bytes) else _file(crafted)
    if name in VISIBLE:  # the file is live: what a prefix check let through runs its code
        with contextlib.suppress(Exception):  # what it builds need not work: the code ran
            built = skops.io.loads(data, trusted=sorted(artifacts.types_in(data)))
            if hasattr(built, "close"):
                built.close()  # builtins.open's file
        assert marker.exists(), "the crafted file should run code when trusted"
        marker.unlink()
    with pytest.raises(artifacts.ArtifactError, match=re.escape(named)):
        artifacts.load(data, artifacts.sha256(data))
    assert not marker.exists()
    assert "Beautiful is better than ugly" not in capsys.readouterr().out


def test_what_is_not_a_skops_file_is_refused_with_the_reason() -> None:
    for data, reason in (
        (b"not a zip", "not a skops file"),
        (_file({"no": "loader"})[:-3], "not a skops"),
    ):
        with pytest.raises(artifacts.ArtifactError, match=reason):
            artifacts.load(data, artifacts.sha256(data))
