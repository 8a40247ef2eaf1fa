"""Services started as a user starts them (`tideline run NAME`, a process each), for the
demo, the tests and the benchmarks; and their Prometheus figures read back."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from tideline.settings import Settings

import services
from ops import scrape


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(settings: Settings, project: Path | str | None = None) -> dict[str, str]:
    """What a `tideline` process needs to reach `settings`' stack and topics, and the project."""
    return {
        **os.environ,
        "TIDELINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TIDELINE_REDIS_URL": settings.redis_url,
        "TIDELINE_TOPIC_PREFIX": settings.topic_prefix,
        "TIDELINE_HOME": str(settings.home),
        "TIDELINE_PROJECT": str(settings.project if project is None else project),
        "COLUMNS": "200",  # rich wraps at 80 without a terminal
    }


class Process:
    """One service process; `port`: its /metrics (default: the service's own default)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        project: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.metrics_port = services.metrics_port(name) if port is None else port
        self.env = environment(settings, project) | dict(env or {})
        self.env[f"TIDELINE_{name.upper()}_METRICS_PORT"] = str(self.metrics_port)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, output: IO[Any] | int = subprocess.DEVNULL) -> "Process":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "run", self.name],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as reply:
            return str(reply.read().decode())

    def metric(self, sample: str, **labels: str) -> float:
        return metric(self.metrics_port, sample, **labels)

    def wait_for(self, sample: str, at_least: float, timeout_s: float = 90, **labels: str) -> float:
        return wait_metric(self.metrics_port, sample, at_least, timeout_s, self.alive, labels)

    def wait_polling(self, timeout_s: float = 90) -> "Process":
        """Until its loop polls Kafka (its liveness signal)."""
        self.wait_for("tideline_last_poll_timestamp_seconds", 1, timeout_s)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def checked_metric(self, sample: str, **labels: str) -> float:
        """`metric`, or RuntimeError if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
        return self.metric(sample, **labels)


@contextlib.contextmanager
def started(
    name: str,
    settings: Settings,
    project: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Process]:
    """One service process for the length of the block; SIGTERM on the way out."""
    process = Process(name, settings, project, env, port).start()
    try:
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def running(
    names: Iterable[str],
    settings: Settings,
    project: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    logs: Path | None = None,
) -> Iterator[dict[str, Process]]:
    """Services `names` on their default ports, output to `logs/NAME.log` (or nowhere);
    SIGTERM to each on the way out."""
    started: dict[str, Process] = {}
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            process = Process(name, settings, project, env)
            if logs is None:
                process.start()
            else:
                with (logs / f"{name}.log").open("ab") as log:
                    process.start(log)
            started[name] = process
        yield started
    finally:
        for process in started.values():
            if process.proc is not None:
                process.proc.send_signal(signal.SIGTERM)
        for process in started.values():
            if process.proc is not None:
                process.proc.wait(timeout=60)


def metric(port: int, sample: str, **labels: str) -> float:
    """The sum of a local service's `sample` values whose labels include `labels`.

    0 while its metrics endpoint does not answer (not started yet, or gone).
    """
    found = scrape.scrape(f"http://127.0.0.1:{port}/metrics")
    return 0.0 if found is None else found.total(sample, **labels)


def wait_metric(
    port: int,
    sample: str,
    at_least: float,
    timeout_s: float = 180,
    alive: Callable[[], bool] = lambda: True,
    labels: Mapping[str, str] | None = None,
) -> float:
    """Poll a local service's `sample` until it reaches `at_least`; its value then.

    TimeoutError when it does not in `timeout_s`, RuntimeError as soon as `alive` says
    the service is gone.
    """
    deadline = time.monotonic() + timeout_s
    while (value := metric(port, sample, **(labels or {}))) < at_least:
        if not alive():
            raise RuntimeError(f"the service on :{port} died with {sample} at {value}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sample} stayed at {value}, wanted {at_least}")
        time.sleep(0.05)
    return value
