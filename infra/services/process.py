"""Detached local processes that we can later prove are ours.

A local service is launched in its own session (so it outlives the CLI command that started
it) with its output appended to a log file, and described by a JSON pid file. Before any
signal is sent, :func:`owns` re-checks ``/proc/<pid>``: the process must still exist, have
the start time recorded at launch (defeats pid reuse) and carry our markers (the absolute
path of our config file) in its command line. A pid that fails any check is never signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.errors import ServiceError

PROC = Path("/proc")


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: enough to find, verify and describe the process."""

    pid: int
    ports: tuple[int, ...]
    started_at: float  # wall clock, epoch seconds (for uptime across CLI invocations)
    proc_start: int | None  # /proc/<pid>/stat field 22 (clock ticks after boot)

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        """The record in ``path``; None when missing or unreadable (treated as stale)."""
        try:
            raw = json.loads(path.read_text())
            return cls(
                pid=int(raw["pid"]),
                ports=tuple(int(p) for p in raw["ports"]),
                started_at=float(raw["started_at"]),
                proc_start=None if raw.get("proc_start") is None else int(raw["proc_start"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the ``(comm)`` field, which may contain spaces."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def proc_start_ticks(pid: int, proc: Path = PROC) -> int | None:
    fields = _stat_fields(pid, proc)
    return int(fields[19]) if fields and len(fields) > 19 else None


def cmdline(pid: int, proc: Path = PROC) -> str | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_alive(pid: int, proc: Path = PROC) -> bool:
    """True while ``pid`` runs; reaps it first if it is our own exited child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: the /proc check below decides
    fields = _stat_fields(pid, proc)
    return fields is not None and fields[0] not in ("Z", "X")


def owns(record: PidRecord, markers: Sequence[str], proc: Path = PROC) -> bool:
    """Whether ``record.pid`` is still the process we launched (see module docstring)."""
    if not is_alive(record.pid, proc):
        return False
    if record.proc_start is not None and proc_start_ticks(record.pid, proc) != record.proc_start:
        return False
    line = cmdline(record.pid, proc)
    return line is not None and all(marker in line for marker in markers)


def spawn_detached(argv: Sequence[str], log_path: Path) -> int:
    """Start ``argv`` in a new session, stdin closed, stdout+stderr appended to ``log_path``.

    ``posix_spawn`` rather than ``subprocess.Popen``: no Popen object is left to warn when
    garbage-collected, since the process is meant to outlive this call (and often us).
    """
    exe = shutil.which(argv[0])
    if exe is None:
        raise ServiceError(f"{argv[0]} not found on PATH")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        exe,
        list(argv),
        os.environ,
        file_actions=actions,
        setsid=True,
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores these; children must not
    )


def terminate(record: PidRecord, markers: Sequence[str], grace_s: float) -> bool:
    """SIGTERM our process, wait ``grace_s``, then SIGKILL. False if it was not ours."""
    if not owns(record, markers):
        return False
    try:
        os.kill(record.pid, signal.SIGTERM)
        if wait_for(lambda: not is_alive(record.pid), grace_s):
            return True
        if owns(record, markers):
            os.kill(record.pid, signal.SIGKILL)
            wait_for(lambda: not is_alive(record.pid), 10.0)
    except ProcessLookupError:
        pass  # it exited on its own between the check and the signal
    return True


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``check`` until it is true or ``timeout_s`` passed; the last answer wins."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the kernel had free a moment ago (bound together to differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
