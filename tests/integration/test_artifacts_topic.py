"""Artifacts on the real compacted topic: published, fetched back, verified; tampering refused."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from tideline import artifacts, kafka
from tideline.settings import Settings

from .services.running import produce

pytestmark = pytest.mark.integration


async def test_a_model_fetched_with_nothing_but_kafka_predicts_the_same(settings: Settings) -> None:
    await kafka.create_topics(settings)
    rng = np.random.default_rng(1)
    x, y = rng.random((400, 6)), rng.integers(0, 2, 400)
    # artifacts are deflated: enough trees that even so the file takes two chunks
    model = HistGradientBoostingClassifier(max_iter=500, max_leaf_nodes=63, early_stopping=False)
    model.fit(x, y)
    data = artifacts.dump(model)
    assert len(data) > artifacts.CHUNK_BYTES  # more than one chunk
    ref = await artifacts.publish(settings, data)
    assert ref["chunks"] > 1

    fetched = await artifacts.fetch(settings, ref)
    again = artifacts.load(fetched, ref["sha256"])
    assert (again.predict_proba(x) == model.predict_proba(x)).all()


async def test_a_tampered_chunk_and_a_foreign_location_are_refused(settings: Settings) -> None:
    await kafka.create_topics(settings)
    data = artifacts.dump({"weights": list(range(1000))})
    ref = await artifacts.publish(settings, data)
    # someone with write access replaces chunk 0: compaction would keep the newest
    _, records = artifacts.chunks(data, settings)
    chunks = artifacts.TOPIC.bind(settings)
    chunk = chunks.decode(records[0].value)
    forged = chunks.encode(chunk | {"data": b"\x00" + chunk["data"][1:]})
    await produce(settings, "models.artifacts", [forged], keys=[records[0].key])
    with pytest.raises(artifacts.ArtifactError, match="does not match"):
        await artifacts.fetch(settings, ref)
    with pytest.raises(artifacts.ArtifactError, match="not /tmp"):
        await artifacts.fetch(settings, ref | {"topic": "/tmp"})
