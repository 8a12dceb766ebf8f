"""Worker processes started by the demo, tests and benchmarks: spawn, wait ready, stop by PID.

Workers run as ``python -m infra.cli ...`` children with the parent's settings passed as
``FRAUDSTREAM_*`` variables, logs in ``state_dir/logs``. Stopping signals only the PID we
started (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from infra.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that rebuilds ``settings`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    for name, value in settings:
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, tuple | list | dict | set | frozenset):
            # pydantic-settings reads complex fields from the environment as JSON
            value = json.dumps(list(value) if isinstance(value, set | frozenset) else value)
        env[f"FRAUDSTREAM_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """One child worker process (``args`` are ``fraudstream`` CLI arguments)."""

    def __init__(self, name: str, args: list[str], settings: Settings) -> None:
        self.name = name
        self.args = args
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path = settings.state_dir / "logs" / f"{name}.log"
        self._log: IO[bytes] | None = None
        self._log_start = 0

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "infra.cli", *self.args],
            env=settings_env(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (crash simulation)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def wait_for_log(self, marker: str, timeout: float = 120.0) -> bool:
        """Wait until ``marker`` appears in this run's log (or the process exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                if marker in self.log_path.read_text(errors="replace")[self._log_start :]:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
