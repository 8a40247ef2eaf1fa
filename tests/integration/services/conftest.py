"""Fixtures of the service tests."""

import signal
from collections.abc import Iterator

import pytest

from .running import Service


@pytest.fixture
def running() -> Iterator[list[Service]]:
    """Services a test starts; whatever is still alive at its end is killed."""
    started: list[Service] = []
    yield started
    for svc in started:
        if svc.alive():
            svc.stop(signal.SIGKILL)
