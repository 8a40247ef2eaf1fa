"""River's drifting streams, shared by the adaptation benchmarks, and a project for each.

Streams, each drifting where the generator has concepts:

- agrawal: classification function 0 to 2 (numbers and small integer codes);
- sea_noise: SEA variant 0 to 3, 10% of labels flipped;
- stagger: STAGGER function 0 to 2, three categorical fields (size, colour, shape);
- hyperplane, rbf: concepts that move all the time (Hyperplane's weights,
  RandomRBFDrift's centroids); their control does not move;

as `abrupt`, `gradual` (as river's ConceptDriftStream, along a sigmoid), `recurring`
(back to the first concept later) and `control` (no drift).
"""

import itertools
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from river.datasets import synth

Point = tuple[dict[str, Any], bool]
Generator = Callable[[int, int], Iterator[tuple[dict[Any, Any], Any]]]  # (concept, seed)


def _agrawal(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    return iter(synth.Agrawal(classification_function=(0, 2)[concept], seed=seed))


def _sea(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    return iter(synth.SEA(variant=(0, 3)[concept], noise=0.1, seed=seed))


def _stagger(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    # its fields are codes of categories: as text, so that a model reads them as such
    found = synth.STAGGER(classification_function=(0, 2)[concept], seed=seed)
    return (({k: f"{k}{v}" for k, v in x.items()}, y) for x, y in found)


def _hyperplane(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    moving = (0.0, 0.001)[concept]
    found = synth.Hyperplane(seed=seed, n_features=10, mag_change=moving, noise_percentage=0.05)
    return iter(found)


def _rbf(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    moving = (0.0, 0.001)[concept]
    found = synth.RandomRBFDrift(
        seed_model=seed, seed_sample=seed, n_centroids=20, change_speed=moving, n_drift_centroids=10
    )
    return iter(found)


# streams with two concepts drift between them; the moving ones move or stay still
STREAMS: dict[str, tuple[Generator, tuple[str, ...]]] = {
    "agrawal": (_agrawal, ("abrupt", "gradual", "recurring", "control")),
    "sea_noise": (_sea, ("abrupt", "gradual", "recurring", "control")),
    "stagger": (_stagger, ("abrupt", "gradual", "recurring", "control")),
    "hyperplane": (_hyperplane, ("moving", "control")),
    "rbf": (_rbf, ("moving", "control")),
}
CASES = [(stream, kind) for stream, (_, kinds) in STREAMS.items() for kind in kinds]


def _named(x: dict[Any, Any]) -> dict[str, Any]:
    # the numbered generators' fields (0, 1, ...) as names a schema takes
    return {f"x{k}" if isinstance(k, int) else str(k): v for k, v in x.items()}


def points(
    stream: str, kind: str, seed: int, events: int, at: int, width: int, back: int | None = None
) -> list[Point]:
    """`events` points of `stream`, drifting as `kind` says at event `at` (over `width`
    events if gradual; recurring: back to the first concept at event `back`, by default
    halfway from `at` to the end)."""
    make, _ = STREAMS[stream]
    found: Iterator[tuple[dict[Any, Any], Any]]
    if kind in ("control", "moving"):
        found = make(1 if kind == "moving" else 0, seed)
    elif kind == "abrupt":
        found = itertools.chain(itertools.islice(make(0, seed), at), make(1, seed + 1))
    elif kind == "gradual":
        found = _gradual(make(0, seed), make(1, seed + 1), at, width, seed)
    else:
        back = (at + events) // 2 if back is None else back
        found = itertools.chain(
            itertools.islice(make(0, seed), at),
            itertools.islice(make(1, seed + 1), back - at),
            make(0, seed + 2),
        )
    return [(_named(x), bool(y)) for x, y in itertools.islice(found, events)]


def _gradual(
    before: Iterator[tuple[dict[Any, Any], Any]],
    after: Iterator[tuple[dict[Any, Any], Any]],
    middle: int,
    width: int,
    seed: int,
) -> Iterator[tuple[dict[Any, Any], Any]]:
    # as river's ConceptDriftStream (which takes datasets, not iterators): the new
    # concept's share grows along a sigmoid centred on `middle`, `width` events wide
    rng = random.Random(seed)
    for i in itertools.count():
        share = 1 / (1 + math.exp(-4 * (i - middle) / width))
        yield next(after) if rng.random() < share else next(before)


ENTITY = "source"


def project(stream: str, folder: Path) -> Path:
    """A project of `stream`'s fields, each a feature as it is, in `folder`: its path."""
    x, _ = points(stream, "control", 0, 1, 1, 1)[0]
    fields = {name: "string" if isinstance(v, str) else "double" for name, v in x.items()}
    definition = {
        "name": stream,
        "event": {
            "name": "Point",
            "entity_key": ENTITY,
            "fields": {ENTITY: "string", **fields},
        },
        "label": {"field": "label", "type": "boolean", "task": "classification"},
        "features": {
            "allowed_lateness": "30s",
            "ttl": "1d",
            "transforms": [{"name": n, "kind": "identity", "field": n} for n in fields],
        },
    }
    path = folder / f"{stream}.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def with_entity(i: int, x: dict[str, Any]) -> dict[str, Any]:
    """Point `i`'s fields as an event: with an entity of a hundred."""
    return {ENTITY: f"s{i % 100}", **x}
