"""Background server processes tracked by pid files, so one CLI call starts and another stops."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tideline.errors import StackError


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ephemeral_ports() -> range:
    """The ports this machine hands to outgoing connections: a server configured on one of
    them can find it held by some client's socket when it starts, and fail to bind."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


# Children this process started, kept so that stop() can reap them (and Python does not warn
# that a Popen was dropped while its process still ran).
_children: dict[int, "subprocess.Popen[bytes]"] = {}


def alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) is not alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class ManagedProcess:
    """A server we started: `marker` must appear in its command line, so a recycled pid is not it."""

    name: str
    run_dir: Path
    log: Path
    marker: str

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if alive(pid) and self.marker in cmdline else None

    def start(self, argv: list[str], cwd: Path) -> "subprocess.Popen[bytes]":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI; Ctrl-C in its shell does not kill it
            )
        self.pidfile.write_text(str(proc.pid))
        _children[proc.pid] = proc
        return proc

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`. False if it was not running."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid):
            _reap(pid)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.1)
        _reap(pid)
        return True

    def kill(self) -> bool:
        """SIGKILL, as a crash would, and wait until it is gone. False if it was not running.

        Its whole process group: a child it forked (Redis writing its append-only file)
        would otherwise live on, holding the port, and a restart would fail to bind it."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        os.killpg(pid, signal.SIGKILL)  # started in a session of its own: the group is its pid
        while alive(pid):
            time.sleep(0.05)
        _reap(pid)
        while _group_alive(pid):
            time.sleep(0.05)
        return True


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies hold no port: not counted)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if state != "Z" and int(group) == pgid:
            return True
    return False


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so it does not linger as a zombie."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], bool],
    process: ManagedProcess,
    timeout: float,
    child: "subprocess.Popen[bytes] | None" = None,
) -> None:
    """Poll `check` until it passes; fail early, with the log, if the process dies.

    With `child` (just started by us) its exit status is what tells; /proc would show
    the parent's command line until the child has exec'd.
    """
    deadline = time.monotonic() + timeout
    while not check():
        exited = child.poll() is not None if child is not None else process.pid() is None
        if exited:
            raise StackError(
                f"{process.name} exited while starting; {process.log}:\n{process.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"{process.name} did not answer in {timeout:.0f} s; see {process.log}")
        time.sleep(0.25)
