"""What the CLI prints about a service, and the pure decision behind an idempotent start."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

State = Literal["running", "stopped", "external", "unreachable"]


@dataclass(frozen=True)
class ServiceStatus:
    """One service's state after start/stop/status; ``str()`` is one line for a terminal.

    ``start_seconds`` is launch → ready, set only by the call that launched the process.
    ``note`` says what the call did ("started", "already running", "stopped pid 123", ...).
    """

    name: str
    state: State
    address: str
    pid: int | None = None
    uptime_seconds: float | None = None
    start_seconds: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("running", "external")

    def __str__(self) -> str:
        parts = [f"{self.name:<6}", f"{self.state:<11}", self.address]
        if self.pid is not None:
            parts.append(f"pid={self.pid}")
        if self.uptime_seconds is not None:
            parts.append(f"up {_duration(self.uptime_seconds)}")
        if self.start_seconds is not None:
            parts.append(f"ready in {self.start_seconds:.1f}s")
        if self.note:
            parts.append(f"({self.note})")
        return "  ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class StartAction(enum.Enum):
    EXTERNAL = "external"  # settings point elsewhere: nothing to launch
    ALREADY_RUNNING = "already running"  # our process is up: only wait until it is ready
    LAUNCH = "launch"
    PORT_CONFLICT = "port conflict"  # something that is not ours holds a port we need


def decide_start(
    *,
    external: bool,
    owned_ports: tuple[int, ...] | None,
    wanted_ports: tuple[int, ...],
    busy_ports: tuple[int, ...],
) -> StartAction:
    """Pure core of ``start``: what to do given what is configured and what is running.

    ``owned_ports``: the ports of our live process (from its pid file), None if none runs.
    ``busy_ports``: which of ``wanted_ports`` accept connections right now.
    Our process running on other ports than the settings ask for is a conflict: the user
    must stop it first rather than have two brokers share one state folder.
    """
    if external:
        return StartAction.EXTERNAL
    if owned_ports is not None:
        if owned_ports == wanted_ports:
            return StartAction.ALREADY_RUNNING
        return StartAction.PORT_CONFLICT
    return StartAction.PORT_CONFLICT if busy_ports else StartAction.LAUNCH
