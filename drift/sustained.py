"""Sustained drift: a column at or above a severity in ``n`` of the last ``m`` windows.

One drifting window is noise or an incident; drift that persists is what justifies a
retrain. :class:`SustainedDrift` keeps, per column, the last ``m`` verdicts of windows that
*had* a verdict (windows too small to judge neither count for nor against), and answers
after each window which columns are sustained. State is explicit (``history``) and the
update is deterministic, so retrain triggers can replay it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from drift.detect import SEVERITY_RANK, Severity, WindowReport


@dataclass(frozen=True)
class SustainedStatus:
    """Columns sustained as of the window ending at ``end_ms`` (empty: none)."""

    end_ms: int
    columns: tuple[str, ...]

    @property
    def sustained(self) -> bool:
        return bool(self.columns)


class SustainedDrift:
    """``n`` of the last ``m`` judged windows at ``level`` or worse, per column."""

    def __init__(self, n: int = 3, m: int = 5, level: Severity = "alert") -> None:
        if not 1 <= n <= m:
            raise ValueError("need 1 <= n <= m")
        self.n, self.m, self.level = n, m, level
        self.history: dict[str, deque[bool]] = {}

    def update(self, report: WindowReport) -> SustainedStatus:
        """Record ``report``'s verdicts and return the columns now sustained."""
        for col in report.columns:
            if not col.evaluated:
                continue
            seen = self.history.setdefault(col.column, deque(maxlen=self.m))
            seen.append(SEVERITY_RANK[col.severity] >= SEVERITY_RANK[self.level])
        hit = tuple(name for name, seen in self.history.items() if sum(seen) >= self.n)
        return SustainedStatus(report.end_ms, hit)

    def reset(self, column: str | None = None) -> None:
        """Forget the history (e.g. after a retrain changed the reference)."""
        if column is None:
            self.history.clear()
        else:
            self.history.pop(column, None)
