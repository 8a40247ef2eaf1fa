"""Serving: stream scoring rate and latency, and request-time scoring over HTTP.

Run against a running stack: .venv/bin/python benchmarks/serving.py

Setup, on fresh topics: N labelled card vectors on `features`; the trainer and the
registry (as processes) make v1, gradient boosting on the last 10,000. Then, per run,
`tideline run serving` in a consumer group of its own:

- rate: it scores the N waiting vectors; records/s from its first prediction to its
  Nth (its own counter). Beside it, in this process, the per-record way (one model
  call per vector) on 2,000 of the same vectors: the ratio is what micro-batching buys.
  And the per-record way with scikit-learn's trees instead of treelite's, alternating.
- latency: vectors arrive at `per_s` a second, stamped when produced; p50/p99 of the
  predictions' `latency_ms` (vector computed to scored, one Kafka hop included).
- HTTP: sequential POST /score over one keep-alive connection, for entities whose
  features are in Redis; p50/p99 as the client sees them. Then the same while another
  process sends `per_s` vectors a second to the stream this serving process scores.
"""

import asyncio
import http.client
import json
import multiprocessing
import random
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import typer
from featurestore import PROJECT, first_model, fresh, running
from rich.console import Console
from rich.table import Table
from tideline import catalog, kafka, learners, project, serde, streams
from tideline.durations import epoch_millis
from tideline.models import ModelClient
from tideline.online_store import Entry, OnlineStore
from tideline.scoring import Scorer
from tideline.settings import Settings
from training import fill

from ops import launcher, synthetic

console = Console()
CARDS = project.load(PROJECT)
SERVING_PORT, HTTP_PORT = 9163, 8063


def stream_rate(settings: Settings, n: int) -> float:
    group = f"{settings.topic_prefix}serving.bench-{uuid.uuid4().hex[:8]}"
    with running(
        "serving",
        settings,
        SERVING_PORT,
        TIDELINE_SERVING_GROUP_ID=group,
        TIDELINE_SERVING_HTTP_PORT="0",
    ):
        launcher.wait_metric(
            SERVING_PORT, "tideline_serving_predictions_total", 1, labels={"role": "champion"}
        )
        started = time.perf_counter()
        launcher.wait_metric(
            SERVING_PORT, "tideline_serving_predictions_total", n, labels={"role": "champion"}
        )
        return n / (time.perf_counter() - started)


def per_record_rate(score: Callable[[list[Any]], list[float]], vectors: list[Any]) -> float:
    started = time.perf_counter()
    for vector in vectors:
        score([vector["values"]])
    return len(vectors) / (time.perf_counter() - started)


def sklearn_trees(scorer: Scorer) -> learners.PipelineRows:
    """The same rows scorer with scikit-learn scoring the trees, as for a model treelite
    cannot read: the peer of the one-row path."""
    fallback = learners.PipelineRows(scorer.loaded.model, scorer.task, learners.Columns.of(CARDS))
    fallback.trees = None
    return fallback


async def latency(settings: Settings, per_s: int, seconds: int) -> list[float]:
    """latency_ms of each prediction for vectors sent at `per_s` a second."""
    ranges = await streams.offset_ranges(settings, catalog.topic("predictions").full_name(settings))
    start = {r.partition: r.end for r in ranges}
    events = synthetic.Generator(CARDS, entities=5000, seed=int(time.time())).stream(
        datetime.now(UTC) - timedelta(hours=1), per_s * seconds, timedelta(milliseconds=10)
    )
    vectors = [v for v, _ in synthetic.labelled_vectors(CARDS, events, synthetic.Concept(CARDS, 7))]
    wanted = {v["event_id"] for v in vectors}
    found: list[float] = []

    async def collect() -> None:
        predictions = catalog.topic("predictions").bind(settings)
        follow = streams.follow(settings, predictions.name, start)
        async with aclosing(follow) as messages:
            async for message in messages:
                record = predictions.decode(message.value)
                if record["event_id"] in wanted and not record["shadow"]:
                    found.append(record["latency_ms"])
                    if len(found) == len(wanted):
                        return

    collecting = asyncio.create_task(collect())
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        began = time.monotonic()
        for i, vector in enumerate(vectors):
            vector["computed_at"] = datetime.now(UTC)
            await producer.send(
                catalog.topic("features").full_name(settings),
                serde.encode(CARDS.feature_schema, vector),
                key=vector["entity_id"].encode(),
                timestamp_ms=epoch_millis(vector["event_time"]),
            )
            await asyncio.sleep(max(0.0, began + (i + 1) / per_s - time.monotonic()))
    await asyncio.wait_for(collecting, 60)
    return found


def http_latencies(requests: int, entities: list[str]) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT)
    found = []
    rng = random.Random(1)
    for _ in range(requests):
        body = json.dumps({"entity_id": rng.choice(entities)})
        started = time.perf_counter()
        connection.request("POST", "/score", body, {"Content-Type": "application/json"})
        reply = connection.getresponse()
        reply.read()
        found.append((time.perf_counter() - started) * 1000)
        assert reply.status == 200, reply.status
    connection.close()
    return found


def _stream(settings: Settings, per_s: int, seconds: int) -> None:
    asyncio.run(latency(settings, per_s, seconds))


def http_while_streaming(
    settings: Settings, per_s: int, requests: int, entities: list[str]
) -> list[float]:
    """HTTP latencies while the same serving process scores `per_s` vectors a second, sent
    from a process of their own (in this one, the sender would hold up the client)."""
    sender = multiprocessing.get_context("fork").Process(target=_stream, args=(settings, per_s, 15))
    sender.start()
    time.sleep(2)  # the stream under way
    found = http_latencies(requests, entities)
    sender.join()
    assert sender.exitcode == 0, sender.exitcode
    return found


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(
    n: int = typer.Option(50_000, help="vectors waiting for each rate run"),
    runs: int = typer.Option(3, help="runs of each measurement"),
    per_s: int = typer.Option(2000, help="vectors a second in the latency runs"),
    requests: int = typer.Option(3000, help="HTTP requests per run"),
) -> None:
    settings = fresh()
    asyncio.run(fill(settings, n))
    first_model(settings, CARDS.name, TIDELINE_TRAINER_WINDOW_ROWS="10000")
    scorer = Scorer(asyncio.run(ModelClient(settings).load(CARDS.name)), CARDS)

    async def sample() -> list[dict[str, Any]]:
        decoder = serde.Decoder([CARDS.feature_schema])
        ranges = await streams.offset_ranges(
            settings, catalog.topic("features").full_name(settings)
        )
        found = []
        async for message in streams.read_ranges(settings, ranges):
            found.append(decoder.decode_as(CARDS.feature_schema, message.value))
            if len(found) == 2000:
                break
        return found

    vectors = asyncio.run(sample())
    rates = [stream_rate(settings, n) for _ in range(runs)]
    peer = sklearn_trees(scorer)
    singles, peers = [], []
    for _ in range(runs):
        singles.append(per_record_rate(scorer.scores, vectors))
        peers.append(per_record_rate(peer, vectors))

    store = OnlineStore(settings, CARDS)
    entities = [f"bench-{i}" for i in range(1000)]
    now = epoch_millis(datetime.now(UTC))
    store.write(
        [Entry(e, f"e-{e}", now, 0, dict(vectors[i]["values"])) for i, e in enumerate(entities)]
    )
    store.close()
    tails: list[tuple[float, float]] = []
    https: list[tuple[float, float]] = []
    busy: list[tuple[float, float]] = []
    group = f"{settings.topic_prefix}serving.bench-{uuid.uuid4().hex[:8]}"
    for _ in range(runs):
        # earlier runs' vectors are on the topic too: all scored before anything is timed
        backlog = sum(
            r.end - r.start
            for r in asyncio.run(
                streams.offset_ranges(settings, catalog.topic("features").full_name(settings))
            )
        )
        with running(
            "serving",
            settings,
            SERVING_PORT,
            TIDELINE_SERVING_GROUP_ID=group,
            TIDELINE_SERVING_HTTP_PORT=str(HTTP_PORT),
        ):
            launcher.wait_metric(
                SERVING_PORT,
                "tideline_serving_predictions_total",
                backlog,
                labels={"role": "champion"},
            )
            found = asyncio.run(latency(settings, per_s, 10))
            tails.append((_pct(found, 50), _pct(found, 99)))
            http_latencies(300, entities)  # warm up
            found = http_latencies(requests, entities)
            https.append((_pct(found, 50), _pct(found, 99)))
            found = http_while_streaming(settings, per_s, requests, entities)
            busy.append((_pct(found, 50), _pct(found, 99)))
            group = f"{settings.topic_prefix}serving.bench-{uuid.uuid4().hex[:8]}"  # the next run scores the backlog again

    table = Table("measure", "median", "runs")
    rate = statistics.median(rates)
    single = statistics.median(singles)
    table.add_row(
        "stream: records/s (micro-batches)", f"{rate:,.0f}", " ".join(f"{r:,.0f}" for r in rates)
    )
    table.add_row(
        "per-record model calls, records/s",
        f"{single:,.0f}",
        " ".join(f"{r:,.0f}" for r in singles),
    )
    table.add_row("ratio", f"{rate / single:.1f}x", "")
    table.add_row(
        "the same, scikit-learn's trees, records/s",
        f"{statistics.median(peers):,.0f}",
        " ".join(f"{r:,.0f}" for r in peers),
    )
    for label, pairs in (
        (f"stream latency at {per_s}/s", tails),
        ("HTTP /score", https),
        (f"HTTP /score, the stream at {per_s}/s", busy),
    ):
        table.add_row(
            f"{label}: p50 / p99 ms",
            f"{statistics.median(p for p, _ in pairs):.2f} / {statistics.median(q for _, q in pairs):.2f}",
            " ".join(f"{p:.2f}/{q:.2f}" for p, q in pairs),
        )
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
