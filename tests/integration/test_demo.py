"""`tideline demo --no-stack`, as the README runs it, against the test stack."""

import subprocess
import sys

import pytest
from tideline.settings import Settings

from .services.running import environment

pytestmark = pytest.mark.integration


def test_demo_runs_the_services_end_to_end_and_stops_them(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tideline.cli", "demo", "--no-stack", "--events", "500"],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "online features of card_id-7" in done.stdout
    assert "training set: 500 labelled events" in done.stdout  # none late, none lost
    assert "rebuilt from its reference: identical" in done.stdout
    assert "dead letters: the 3 broken records are on" in done.stdout
    running = subprocess.run(["pgrep", "-f", "tideline.cli run"], capture_output=True, text=True)
    assert running.stdout == "", "the demo left services running"
