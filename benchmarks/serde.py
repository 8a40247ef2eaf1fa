"""Encode/decode records per second: Tideline's single-object serde next to plain fastavro,
and decoding after the schema store's check next to decoding alone.

Run: .venv/bin/python benchmarks/serde.py [--records N] [--runs R]
Both sides encode the same records with the same schema in the same process; the
difference is the single-object framing (marker, fingerprint, checks). The third row
adds what every loop does before a batch is decoded once a service's schema store is
open (`schema_store.unknown`: each record's fingerprint looked up, all known here).
"""

import gc
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import typer
from fastavro import schemaless_reader, schemaless_writer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tideline import schema_store, schemas, serde

# A card transaction, as the demo project declares it: the event schema users will run.
FIELDS = [
    {"name": "card_id", "type": "string"},
    {"name": "merchant_id", "type": "string"},
    {"name": "category", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "currency", "type": "string"},
    {"name": "country", "type": "string"},
    {"name": "channel", "type": "string"},
    {"name": "card_present", "type": "boolean"},
]


def records(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "event_id": f"evt-{i:09d}",
            "entity_id": f"card-{rng.randrange(10_000):05d}",
            "event_time": start + timedelta(milliseconds=i * 37),
            "payload": {
                "card_id": f"card-{rng.randrange(10_000):05d}",
                "merchant_id": f"m-{rng.randrange(2_000)}",
                "category": rng.choice(["grocery", "travel", "fuel", "online", "dining"]),
                "amount": round(rng.lognormvariate(3, 1), 2),
                "currency": "EUR",
                "country": rng.choice(["FR", "DE", "NL", "ES"]),
                "channel": rng.choice(["pos", "web", "app"]),
                "card_present": rng.random() < 0.6,
            },
        }
        for i in range(n)
    ]


def rate(fn: Callable[[], object], n: int) -> float:
    gc.collect()
    gc.disable()  # as timeit does: a collection landing in one side's run is noise
    try:
        start = time.perf_counter()
        fn()
        return n / (time.perf_counter() - start)
    finally:
        gc.enable()


def main(records_per_run: int = typer.Option(50_000, "--records"), runs: int = 7) -> None:
    schema = schemas.derive("tideline.Event", FIELDS, namespace="cards")
    parsed = schema.parsed
    data = records(records_per_run)
    framed = [serde.encode(schema, r) for r in data]
    plain = [b[serde.HEADER_SIZE :] for b in framed]
    decoder = serde.Decoder([schema])

    def plain_encode() -> None:
        for r in data:
            buffer = BytesIO()
            schemaless_writer(buffer, parsed, r)
            buffer.getvalue()

    def plain_decode() -> None:
        for b in plain:
            schemaless_reader(BytesIO(b), parsed, None)

    def tideline_encode() -> None:
        for r in data:
            serde.encode(schema, r)

    def tideline_decode() -> None:
        for b in framed:
            decoder.decode(b)

    writers = serde.Writers()
    writers.add(schema)

    def checked_decode() -> None:
        assert not schema_store.unknown(framed, writers)  # all known: no catch-up
        tideline_decode()

    cases = {
        "encode (fastavro, tideline)": (plain_encode, tideline_encode),
        "decode (fastavro, tideline)": (plain_decode, tideline_decode),
        "decode (tideline, after the store's check)": (tideline_decode, checked_decode),
    }
    results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
    # Interleave the two sides, alternating which goes first, so that drift in machine
    # load and warm-up hit both alike.
    for run in track(range(runs), description=f"{runs} runs of {records_per_run:,} records"):
        for name, (plain_fn, ours_fn) in cases.items():
            order = [(0, plain_fn), (1, ours_fn)]
            for side, fn in order if run % 2 == 0 else reversed(order):
                results[name][side].append(rate(fn, records_per_run))

    table = Table("operation (first, second)", "first rec/s", "second rec/s", "cost of the second")
    for name, (plain_rates, our_rates) in results.items():
        p, o = statistics.median(plain_rates), statistics.median(our_rates)
        table.add_row(name, f"{p:,.0f}", f"{o:,.0f}", f"{(p / o - 1) * 100:+.1f}%")
    Console().print(table)
    Console().print(f"medians of {runs} runs; record size {len(framed[0])} bytes framed")


if __name__ == "__main__":
    typer.run(main)
