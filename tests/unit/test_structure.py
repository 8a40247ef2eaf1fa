"""The architecture, read from the code's imports and calls with `ast`: the library imports
no service and no operator module, no service imports another, the one consumer loop is
`streams.run`, and topics meet their schemas only in the catalog."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY, SERVICES, OPS = ROOT / "libs" / "tideline", ROOT / "services", ROOT / "ops"
BENCHMARKS = ROOT / "benchmarks"


def _module(path: Path) -> str:
    base = ROOT / "libs" if path.is_relative_to(LIBRARY) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, relative imports resolved."""
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _calls(path: Path) -> Iterator[tuple[str, ast.Call]]:
    """(dotted name of what is called, the call) for each call in `path`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def test_the_reader_walks_what_is_there() -> None:
    assert len(_files(LIBRARY)) > 20
    assert len(_files(SERVICES)) > 30
    assert len(_files(OPS)) > 5
    assert "tideline.streams" in set(_imports(SERVICES / "ingest" / "stream.py"))
    assert "services.ingest.handler.Ingest" in set(_imports(SERVICES / "ingest" / "stream.py"))


@pytest.mark.parametrize("path", _files(LIBRARY), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_imports_no_service_and_no_operator_module(path: Path) -> None:
    outside = [m for m in _imports(path) if m.split(".")[0] in ("services", "ops")]
    assert not outside, f"{path.name} imports {outside}"


@pytest.mark.parametrize("path", _files(SERVICES), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_service_imports_another_or_the_operator_package(path: Path) -> None:
    own = _module(path).split(".")[:2]  # services.<name>
    for module in _imports(path):
        parts = module.split(".")
        assert parts[0] != "ops", f"{path.name} imports {module}"
        if parts[0] == "services" and len(parts) > 1 and len(own) > 1:
            assert parts[1] == own[1], f"{path.name} imports another service: {module}"


PRODUCT = _files(LIBRARY, SERVICES, OPS)


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_only_consumer_loops_are_in_streams(path: Path) -> None:
    polls = [name for name, _ in _calls(path) if name.split(".")[-1] in ("getmany", "getone")]
    # The schema store reads its one topic to the end, in the middle of other loops' batches.
    if path not in (LIBRARY / "streams.py", LIBRARY / "schema_store.py"):
        assert not polls, f"{path.name} polls a consumer itself: {polls}; use streams.run"


@pytest.mark.parametrize(
    "path", [*PRODUCT, *_files(BENCHMARKS)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_topics_and_schemas_are_paired_in_the_catalog_only(path: Path) -> None:
    if path in (LIBRARY / "catalog.py", LIBRARY / "schemas.py"):
        return
    by_hand = [
        ast.unparse(call)
        for name, call in _calls(path)
        if name.endswith(("schemas.load", "load_schema")) or name.endswith("settings.topic")
    ]
    assert not by_hand, f"{path.name} pairs a topic or a schema by hand: {by_hand}"


def test_every_service_is_declared_with_catalog_topics() -> None:
    from tideline import catalog, dlq

    import services

    for name in services.NAMES + services.OPTIONAL:
        declared = services.declared(name)
        assert declared.name == name
        assert declared.consumes, f"{name} consumes nothing"
        assert set(declared.topics) <= set(catalog.topics().values())
        assert dlq.TOPIC in declared.topics
        main = SERVICES / name / "main.py"
        assert len(main.read_text().splitlines()) < 30, f"{name}/main.py does more than wire"
