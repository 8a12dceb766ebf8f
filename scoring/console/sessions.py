"""Console sign-in sessions and the verdict audit trail.

An analyst signs in with their named API key (:mod:`scoring.api_keys`); the session
remembers only the key's *name*, a random session token (the ``HttpOnly``,
``SameSite=Strict`` cookie) and a random CSRF token that every state-changing request must
echo (header ``X-CSRF-Token`` or form field ``csrf``). Sessions live in this process
(a restart signs everyone out) and expire after ``console_session_hours``.

The audit trail is append-only JSON lines under ``state_dir/audit/console_verdicts.jsonl``
(one line per verdict, claim refusal excluded) and the last entries are kept in memory for
the console's pages.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COOKIE = "fraudstream_console"


@dataclass(frozen=True)
class Session:
    token: str
    name: str
    csrf: str
    expires: float


@dataclass
class Sessions:
    hours: float = 12.0
    clock: Callable[[], float] = time.time
    limit: int = 10_000
    _by_token: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, name: str) -> Session:
        session = Session(secrets.token_urlsafe(32), name, secrets.token_urlsafe(24),
                          self.clock() + self.hours * 3600)
        with self._lock:
            if len(self._by_token) >= self.limit:
                self._purge()
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None or session.expires < self.clock():
            return None
        return session

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def _purge(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._by_token.items() if s.expires < now]:
            del self._by_token[token]
        while len(self._by_token) >= self.limit:  # still full: the oldest sign-ins go
            del self._by_token[next(iter(self._by_token))]


@dataclass
class AuditTrail:
    path: Path | None
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.recent.append(entry)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as out:
                    out.write(json.dumps(entry, sort_keys=True) + "\n")

    def for_case(self, tid: str) -> list[dict[str, Any]]:
        return [e for e in self.recent if e.get("transaction_id") == tid]
