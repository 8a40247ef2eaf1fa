"""What every service's entry point shares: logging, metrics endpoint, stop on SIGTERM."""

import asyncio
import gc
import logging
import signal
import time

from prometheus_client import Gauge, start_http_server

LAST_POLL = Gauge(
    "tideline_last_poll_timestamp_seconds",
    "When the service last polled Kafka: its liveness signal.",
    ["service"],
)


def quiet_gc() -> None:
    """Shorten the garbage collector's pauses, the tail of every latency here.

    A service holds much long-lived state (window rows, dedup ids, library machinery);
    a full collection walks all of it and stalled a stream for 30+ ms. Objects from
    start-up are frozen out of collection, and young ones collected less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def setup(service: str, metrics_port: int) -> asyncio.Event:
    """Configure logs, serve /metrics, and return an event that SIGTERM/SIGINT set."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s service={service} %(name)s: %(message)s",
    )
    if metrics_port:
        start_http_server(metrics_port)
    quiet_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def heartbeat(service: str) -> None:
    LAST_POLL.labels(service).set(time.time())
