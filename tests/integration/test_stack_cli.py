"""`tideline stack` as a user runs it: its own ports and home, beside the session's stack."""

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tideline import catalog
from tideline.settings import Settings

pytestmark = pytest.mark.integration

TIDELINE = [sys.executable, "-m", "ops.cli"]


def _processes_under(home: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(home) in cmdline and state != "Z":
            found.append(cmdline)
    return found


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "TIDELINE_HOME": str(tmp_path / "home"),
        "TIDELINE_KAFKA_BOOTSTRAP": "localhost:29092",
        "TIDELINE_KAFKA_CONTROLLER_PORT": "29093",
        "TIDELINE_REDIS_URL": "redis://localhost:26379/0",
        "COLUMNS": "200",
    }
    yield env
    subprocess.run([*TIDELINE, "stack", "down"], env=env, check=False, capture_output=True)


def _tideline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDELINE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_up_twice_topics_status_down(env: dict[str, str]) -> None:
    home = Path(env["TIDELINE_HOME"])
    first = _tideline(env, "stack", "up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "kafka started on localhost:29092" in first.stdout
    assert "redis started on localhost:26379" in first.stdout
    assert "made a CA and credentials for every principal" in first.stdout  # secured
    assert "granted the catalog's ACLs under 'tideline.'" in first.stdout
    assert stat.S_IMODE((home / "credentials").stat().st_mode) == 0o700
    pids = {p.name: p.read_text() for p in (home / "run").glob("*.pid")}

    second = _tideline(env, "stack", "up")
    assert second.returncode == 0
    assert "kafka already running" in second.stdout
    assert "redis already running" in second.stdout
    assert {p.name: p.read_text() for p in (home / "run").glob("*.pid")} == pids
    undone = _tideline(env, "stack", "up", "--insecure")
    assert undone.returncode == 1
    assert "holds a secured cluster" in " ".join(undone.stdout.split())

    assert _tideline(env, "topics", "create").returncode == 0
    status = _tideline(env, "stack", "status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("healthy") == 2
    for name in catalog.topics():
        line = next(line for line in status.stdout.splitlines() if f"tideline.{name} " in line)
        assert "yes" in line
    assert (home / "logs" / "kafka.log").stat().st_size > 0
    assert (home / "logs" / "redis.log").stat().st_size > 0

    down = _tideline(env, "stack", "down")
    assert down.returncode == 0
    assert "kafka stopped" in down.stdout
    assert _processes_under(home) == []
    assert _tideline(env, "stack", "status").returncode == 1


def test_insecure_starts_a_plaintext_stack_that_stays_so(env: dict[str, str]) -> None:
    home = Path(env["TIDELINE_HOME"])
    first = _tideline(env, "stack", "up", "--insecure")
    assert first.returncode == 0, first.stdout + first.stderr
    assert not (home / "credentials").exists()
    plain = Settings(home=home, kafka_bootstrap=env["TIDELINE_KAFKA_BOOTSTRAP"])
    assert plain.kafka_security_protocol == "PLAINTEXT"
    created = _tideline(env, "topics", "create")  # no credentials, and no ACLs to grant
    assert created.returncode == 0, created.stdout + created.stderr
    again = _tideline(env, "stack", "up")
    assert again.returncode == 0
    assert "cluster is plaintext, with no ACLs (--insecure)" in " ".join(again.stdout.split())
    assert not (home / "credentials").exists()


def test_a_taken_port_is_a_clear_error_and_starts_nothing(env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 26379))
        squatter.listen()
        result = _tideline(env, "stack", "up")
    assert result.returncode == 1
    assert "port 26379 is already taken" in " ".join(result.stdout.split())
    assert _processes_under(Path(env["TIDELINE_HOME"])) == []
