"""Artifacts without Kafka: skops round trips, sha256 checks, trusted types, chunking."""

import numpy as np
import pytest
from river import linear_model
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tideline import artifacts, schemas, serde
from tideline.settings import Settings

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


def test_types_from_outside_the_model_libraries_are_refused() -> None:
    data = artifacts.dump({"model": serde.Decoder([])})  # a type of ours, not a model library's
    with pytest.raises(artifacts.ArtifactError, match="trusted"):
        artifacts.load(data, artifacts.sha256(data))


def test_chunks_reassemble_and_name_every_piece() -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB: three chunks
    ref, records = artifacts.chunks(data, Settings())
    assert (ref["chunks"], ref["size"], ref["sha256"]) == (3, len(data), artifacts.sha256(data))
    assert [r.key for r in records] == [f"{ref['sha256']}:{i}".encode() for i in range(3)]
    decoder = serde.Decoder([schemas.load("tideline.ArtifactChunk")])
    found = [decoder.decode(r.value)[1] for r in reversed(records)]
    assert artifacts.assemble(ref, found) == data
    with pytest.raises(artifacts.ArtifactError, match="lacks chunks"):
        artifacts.assemble(ref, found[1:])
    bad = [dict(found[0], data=b"x" + found[0]["data"][1:]), *found[1:]]
    with pytest.raises(artifacts.ArtifactError, match="does not match"):
        artifacts.assemble(ref, bad)
