"""The closed loop, end to end, as `tideline demo --no-stack` runs it: all six services on the
real stack, an abrupt concept drift, and nobody pressing anything; and a control run."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tideline import catalog, streams
from tideline.settings import Settings

from ops import tail

from .services.running import environment

pytestmark = pytest.mark.integration


def _tideline(settings: Settings, *args: str) -> str:
    """`tideline ARGS` against this test's stack; its output, once it succeeded."""
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _demo(settings: Settings, report: Path, *options: str) -> tuple[str, dict[str, Any]]:
    out = _tideline(settings, "demo", "--no-stack", "--report", str(report), *options)
    found = json.loads(report.read_text())
    assert _services_on(found["topic_prefix"]) == [], "the demo left services running"
    return out, found


def _services_on(prefix: str) -> list[int]:
    """`tideline run` processes on this test's topics (another stack's on the machine are not
    the demo's)."""
    found = subprocess.run(["pgrep", "-f", "ops.cli run"], capture_output=True, text=True)
    mine = []
    for pid in map(int, found.stdout.split()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if f"TIDELINE_TOPIC_PREFIX={prefix}".encode() in environ:
            mine.append(pid)
    return mine


def test_drift_is_detected_retrained_promoted_and_served_on_its_own(
    settings: Settings, tmp_path: Path
) -> None:
    out, report = _demo(settings, tmp_path / "report.json")
    (event,) = report["drift_events"]  # one drift, one event
    assert event["kind"] in ("concept", "performance")
    assert event["model_version"] == 1
    assert report["labelled_to_detection"] <= 500  # events from the drift point to detection
    assert report["score_status"] == {"without token": 401, "with token": 200}
    # the drift run, then its follow-ups on 2x and 4x its labels; the gate keeps the better
    assert report["retrains"] == 3
    promotions = report["promotions"]
    assert promotions[0] == 2
    assert promotions == sorted(set(promotions))
    assert set(promotions) <= {2, 3, 4}
    assert {"1", "2"} <= set(report["first_served"])  # serving switched to the new champion
    # the new champion serves within the planned stream, however slow the machine
    assert report["events_to_new_champion"] < 10_000
    accuracy = report["accuracy"]
    before, _ = accuracy["before the drift point"]
    stale, _ = accuracy["after it, v1 still serving"]
    recovered, count = accuracy["the last 1000 served"]
    assert before > 0.85
    assert stale < before - 0.2  # the drift really hurt...
    assert count == 1000
    assert recovered > before - 0.05  # ...and the platform recovered, within a few points
    assert "monitor.drift: " in out
    assert "registry: v2 promoted" in out
    assert "serving: first prediction by v2" in out

    # what an operator sees of it, with `tideline monitor tail`
    prefixed = settings.model_copy(update={"topic_prefix": report["topic_prefix"]})
    kept = asyncio.run(_records(prefixed, list(tail.TOPICS)))
    shown = _tideline(prefixed, "monitor", "tail", "--from-beginning", "--limit", str(kept))
    lines = shown.splitlines()
    assert sum("DRIFT concept" in line or "DRIFT performance" in line for line in lines) == 1
    assert any("cards v2: promoted -> production" in line for line in lines)
    assert any("cards v1 volume" in line and "accuracy" in line for line in lines)


async def _records(settings: Settings, topics: list[str]) -> int:
    """How many records `topics` hold now."""
    ranges = [
        r
        for t in topics
        for r in await streams.offset_ranges(settings, catalog.topic(t).full_name(settings))
    ]
    return sum(r.end - r.start for r in ranges)


def test_a_gradual_drift_is_followed_past_its_first_detection(
    settings: Settings, tmp_path: Path
) -> None:
    # the new concept labels a growing share of events over 4,000 of them: the first
    # detection comes mid-transition, and the follow-ups must keep replacing the champion
    _, report = _demo(settings, tmp_path / "report.json", "--gradual", "4000")
    assert len(report["drift_events"]) >= 1
    assert report["retrains"] >= 3
    assert len(report["promotions"]) >= 2  # a follow-up beat the first post-drift champion
    stale, _ = report["accuracy"]["after it, v1 still serving"]
    last, count = report["accuracy"]["the last 1000 served"]
    assert count == 1000
    # not yet within 5 points of before the drift on every run (0.85 and 0.94 measured)
    assert last > max(stale, 0.8)


def test_control_run_no_drift_no_event_no_retrain(settings: Settings, tmp_path: Path) -> None:
    _, report = _demo(settings, tmp_path / "report.json", "--no-drift")
    assert report["drift_events"] == []
    assert report["retrains"] == 0
    assert report["promotions"] == []
    accuracy, count = report["accuracy"]["the last 1000 served"]
    assert count == 1000
    assert accuracy > 0.85
