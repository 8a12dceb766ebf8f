"""A progress bar on stderr for ``replay publish``: redrawn in place on a terminal, one line
per report otherwise (logs, CI); the publisher calls it about once a second."""

from __future__ import annotations

import sys
from typing import TextIO

from replay.publish import PublishProgress


class ProgressBar:
    """``[#####.....]  45.0%  12,345/27,431  1,234/s  eta 12s  event 2025-01-06T...``."""

    def __init__(self, offset: int = 0, width: int = 30, stream: TextIO | None = None) -> None:
        self.offset = offset  # rows already published by an earlier (resumed) run
        self.width = width
        self.stream = stream or sys.stderr

    def __call__(self, p: PublishProgress) -> None:
        total = (p.total or 0) + self.offset
        done = p.produced + self.offset
        share = done / total if total else 1.0
        filled = int(round(share * self.width))
        eta = (p.total - p.produced) / p.rate if p.total and p.rate > 0 else 0.0
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {share:6.1%} "
                f"{done:,}/{total:,} {p.rate:,.0f}/s eta {eta:,.0f}s "
                f"acked {p.sent:,} failed {p.failed} event {p.event_time or '-'}")
        tty = self.stream.isatty()
        if p.done:
            line += f" — done in {p.elapsed:.1f}s"
        self.stream.write(("\r" + line + ("\n" if p.done else "")) if tty else line + "\n")
        self.stream.flush()
