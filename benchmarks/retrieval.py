"""Online retrieval p50/p99 for 1 and for 100 entities: Tideline next to Feast, same Redis.

Needs Feast, which is not a runtime dependency: `make bench-feast` installs the `bench`
extra into .venv-bench and runs this there, against a running stack (`tideline stack up`).

Both stores hold the same 10 features (the cards project's) of the same 100,000
entities in the same redis-server; requests alternate between the sides and each
side is timed to a ready-to-use result (our OnlineFeatures, Feast's to_dict()).
Raw redis-py GET/MGET of our keys, with no decoding, is shown as the floor.
"""

import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Float64, Int64, PrimitiveFeastType, String
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tideline import project
from tideline.durations import epoch_millis
from tideline.online_store import Entry, OnlineStore
from tideline.settings import Settings

FEAST_TYPES: dict[str, PrimitiveFeastType] = {
    "double": Float64,
    "float": Float64,
    "int": Int64,
    "long": Int64,
    "string": String,
}


def vectors(definition: project.Project, n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    now = datetime.now(UTC).replace(microsecond=0)
    found = []
    for i in range(n):
        values = {
            "amount_log": rng.random() * 8,
            "hour": rng.randint(0, 23),
            "amount": rng.random() * 500,
            "tx_count_10m": rng.randint(1, 9),
            "amount_mean_1h": rng.random() * 300,
            "amount_max_1h": rng.random() * 900,
            "amount_sum_day": rng.random() * 3000,
            "merchants_1h": rng.randint(1, 5),
            "countries_30m": rng.randint(1, 3),
            "last_channel": rng.choice(["pos", "web", "app"]),
        }
        assert list(values) == definition.features.names
        found.append(
            {
                "event_id": f"e-{i}",
                "entity_id": f"card-{i}",
                "event_time": now - timedelta(seconds=rng.randint(0, 3600)),
                "feature_version": definition.features.version,
                "computed_at": now,
                "values": values,
            }
        )
    return found


def fill_tideline(store: OnlineStore, rows: list[dict[str, Any]]) -> None:
    entries = [
        Entry(r["entity_id"], r["event_id"], epoch_millis(r["event_time"]), i, r["values"])
        for i, r in enumerate(rows)
    ]
    for i in track(range(0, len(entries), 2000), description="filling Tideline's store"):
        store.write(entries[i : i + 2000])


def feast_store(
    settings: Settings, definition: project.Project, repo: Path, rows: list[dict[str, Any]]
) -> FeatureStore:
    host, port = settings.redis_host_port
    config = RepoConfig(
        project=f"bench_{uuid.uuid4().hex[:6]}",
        provider="local",
        registry=RegistryConfig(path=str(repo / "registry.db")),
        online_store=RedisOnlineStoreConfig(connection_string=f"{host}:{port}"),
        entity_key_serialization_version=3,
        repo_path=repo,
    )
    store = FeatureStore(config=config)
    frame = pd.DataFrame(
        [{"card_id": r["entity_id"], "event_time": r["event_time"], **r["values"]} for r in rows]
    )
    frame.head(1).to_parquet(repo / "source.parquet")
    fields = definition.feature_schema.parsed["fields"][-1]["type"]["fields"]
    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="cards",
        entities=[card],
        schema=[Field(name=f["name"], dtype=FEAST_TYPES[f["type"][1]]) for f in fields],
        source=FileSource(path=str(repo / "source.parquet"), timestamp_field="event_time"),
        ttl=timedelta(days=1),
        online=True,
    )
    store.apply([card, view])
    for i in track(range(0, len(frame), 10_000), description="filling Feast's store"):
        store.write_to_online_store("cards", frame.iloc[i : i + 10_000])
    return store


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3


def main(entities: int = 100_000, requests: int = 2000, runs: int = 5) -> None:
    settings = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})
    definition = project.load("examples/cards/project.yaml")
    rows = vectors(definition, entities)
    ours = OnlineStore(settings, definition)
    fill_tideline(ours, rows)
    with tempfile.TemporaryDirectory() as repo:
        feast = feast_store(settings, definition, Path(repo), rows)
        names = [f"cards:{n}" for n in definition.features.names]
        ids = [r["entity_id"] for r in rows]
        keys = {e: ours.layout.key(e) for e in ids}

        def raw(batch: list[str]) -> object:
            if len(batch) == 1:
                return ours.client.get(keys[batch[0]])
            return ours.client.mget([keys[e] for e in batch])

        sides: dict[str, Callable[[list[str]], object]] = {
            "raw redis-py (no decoding)": raw,
            "tideline": ours.get,
            "feast": lambda batch: feast.get_online_features(
                names, [{"card_id": e} for e in batch]
            ).to_dict(),
        }
        # Both give the same values, or the comparison means nothing.
        sample = ids[:3]
        assert [f.values for f in ours.get(sample)] == [
            {
                n: feast.get_online_features(names, [{"card_id": e}]).to_dict()[n][0]
                for n in definition.features.names
            }
            for e in sample
        ]
        rng = random.Random(2)
        table = Table(
            "entities", "store", "p50 ms", "p99 ms", "p99 runs (ms)", "feast/tideline p99"
        )
        for size in (1, 100):
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for run in track(
                range(runs), description=f"{runs} runs x {requests} requests of {size}"
            ):
                samples: dict[str, list[float]] = {name: [] for name in sides}
                order = list(sides)
                for i in range(requests // (1 if size == 1 else 4)):
                    batch = rng.sample(ids, size)
                    for name in order if (i + run) % 2 == 0 else reversed(order):
                        started = time.perf_counter()
                        sides[name](batch)
                        samples[name].append(time.perf_counter() - started)
                for name, values in samples.items():
                    results[name].append(percentiles(values))
            p99 = {name: statistics.median(p for _, p in r) for name, r in results.items()}
            for name, r in results.items():
                table.add_row(
                    str(size),
                    name,
                    f"{statistics.median(p for p, _ in r):.3f}",
                    f"{p99[name]:.3f}",
                    ", ".join(f"{p:.2f}" for _, p in r),
                    f"{p99['feast'] / p99['tideline']:.1f}x" if name == "tideline" else "",
                )
        Console().print(table)
        feast.teardown()
    ours.client.delete(*keys.values())
    ours.close()


if __name__ == "__main__":
    typer.run(main)
