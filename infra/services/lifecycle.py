"""One start/stop/status implementation shared by every local service.

A service module only says how to configure, launch and probe its process
(:class:`LocalService`); the pid file, ownership checks, readiness wait, timing and
external-service handling live here once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from infra.errors import ServiceError
from infra.services.process import (
    PidRecord,
    is_alive,
    log_tail,
    owns,
    port_open,
    proc_start_ticks,
    spawn_detached,
    terminate,
)
from infra.services.status import ServiceStatus, StartAction, decide_start
from infra.settings import Settings

log = logging.getLogger("fraudstream.infra.services")


class LocalService(Protocol):
    """How to run one service as a local process. Methods must not start anything."""

    name: str
    start_timeout_s: float
    stop_grace_s: float

    def external(self, settings: Settings) -> bool: ...
    def address(self, settings: Settings) -> str: ...
    def ports(self, settings: Settings) -> tuple[int, ...]: ...
    def home(self, settings: Settings) -> Path: ...
    def markers(self, settings: Settings) -> tuple[str, ...]: ...
    def prepare(self, settings: Settings) -> list[str]: ...
    def probe(self, settings: Settings, timeout_s: float) -> bool: ...


def pid_path(svc: LocalService, settings: Settings) -> Path:
    return svc.home(settings) / f"{svc.name}.pid"


def log_path(svc: LocalService, settings: Settings) -> Path:
    return svc.home(settings) / f"{svc.name}.log"


def owned_record(svc: LocalService, settings: Settings) -> PidRecord | None:
    """The pid record of our live process, or None (missing, stale or someone else's)."""
    record = PidRecord.load(pid_path(svc, settings))
    return record if record is not None and owns(record, svc.markers(settings)) else None


def start(svc: LocalService, settings: Settings) -> ServiceStatus:
    """Launch the service unless it already runs; return once it answers its probe."""
    external = svc.external(settings)
    record = None if external else owned_record(svc, settings)
    wanted = svc.ports(settings)
    busy = () if external or record else tuple(p for p in wanted if port_open(p))
    action = decide_start(
        external=external,
        owned_ports=record.ports if record else None,
        wanted_ports=wanted,
        busy_ports=busy,
    )
    if action is StartAction.EXTERNAL:
        log.info("%s: external at %s, not started here", svc.name, svc.address(settings))
        return replace(status(svc, settings), note="external: not started here")
    if action is StartAction.PORT_CONFLICT:
        held = record.ports if record else busy
        raise ServiceError(
            f"{svc.name}: port(s) {held} are in use (wanted {wanted}); stop whatever holds "
            f"them or choose other ports in the settings"
        )
    if record is not None:
        _wait_ready(svc, settings, record, kill_on_failure=False)
        log.info("%s: already running (pid %d)", svc.name, record.pid)
        return replace(status(svc, settings), note="already running")

    argv = svc.prepare(settings)
    began = time.monotonic()
    pid = spawn_detached(argv, log_path(svc, settings))
    record = PidRecord(pid, wanted, time.time(), proc_start_ticks(pid))
    record.dump(pid_path(svc, settings))
    log.info("%s: launched pid %d, waiting until it answers", svc.name, pid)
    _wait_ready(svc, settings, record, kill_on_failure=True)
    took = time.monotonic() - began
    log.info("%s: ready at %s in %.1fs", svc.name, svc.address(settings), took)
    return ServiceStatus(
        svc.name, "running", svc.address(settings), pid, 0.0, start_seconds=took, note="started"
    )


def _wait_ready(
    svc: LocalService, settings: Settings, record: PidRecord, *, kill_on_failure: bool
) -> None:
    deadline = time.monotonic() + svc.start_timeout_s
    while time.monotonic() < deadline:
        if not is_alive(record.pid):
            pid_path(svc, settings).unlink(missing_ok=True)
            raise ServiceError(_failure(svc, settings, f"pid {record.pid} exited while starting"))
        if svc.probe(settings, 2.0):
            return
        time.sleep(0.2)
    if kill_on_failure:
        terminate(record, svc.markers(settings), svc.stop_grace_s)
        pid_path(svc, settings).unlink(missing_ok=True)
    raise ServiceError(
        _failure(svc, settings, f"not ready after {svc.start_timeout_s:.0f}s (pid {record.pid})")
    )


def _failure(svc: LocalService, settings: Settings, what: str) -> str:
    path = log_path(svc, settings)
    return f"{svc.name}: {what}; last lines of {path}:\n{log_tail(path)}"


def stop(svc: LocalService, settings: Settings) -> ServiceStatus:
    """Stop our process only; a pid file naming anyone else's process is just removed."""
    address = svc.address(settings)
    if svc.external(settings):
        return ServiceStatus(svc.name, "external", address, note="external: not stopped here")
    path = pid_path(svc, settings)
    record = PidRecord.load(path)
    if record is None:
        path.unlink(missing_ok=True)
        return ServiceStatus(svc.name, "stopped", address, note="was not running")
    began = time.monotonic()
    ours = terminate(record, svc.markers(settings), svc.stop_grace_s)
    path.unlink(missing_ok=True)
    if not ours:
        note = f"stale pid file removed; pid {record.pid} is not ours, left alone"
    else:
        note = f"stopped pid {record.pid} in {time.monotonic() - began:.1f}s"
    log.info("%s: %s", svc.name, note)
    return ServiceStatus(svc.name, "stopped", address, note=note)


def status(svc: LocalService, settings: Settings) -> ServiceStatus:
    """Running/stopped from the pid file, plus one probe; external services are only probed."""
    address = svc.address(settings)
    if svc.external(settings):
        reachable = svc.probe(settings, 3.0)
        return ServiceStatus(svc.name, "external" if reachable else "unreachable", address)
    record = owned_record(svc, settings)
    if record is None:
        stale = pid_path(svc, settings).exists()
        return ServiceStatus(svc.name, "stopped", address, note="stale pid file" if stale else "")
    answering = svc.probe(settings, 2.0)
    return ServiceStatus(
        svc.name,
        "running" if answering else "unreachable",
        address,
        record.pid,
        max(0.0, time.time() - record.started_at),
        note="" if answering else "process runs but does not answer",
    )
