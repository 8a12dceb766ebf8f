"""Checkpoints that make ``replay publish`` resumable after an interruption.

A checkpoint is a small JSON file rewritten atomically (temp file + rename) about once a
second while publishing: the number of leading rows the broker has *acknowledged*
(``rows_done``) and a fingerprint of what is being published (file path, size and mtime,
the column mapping, the topic, ``limit``). ``--resume`` continues at ``rows_done`` and
refuses a checkpoint whose fingerprint differs, so a changed file or mapping is never
resumed at a wrong row.

Guarantee: at-least-once. After Ctrl-C the producer is flushed first, so the checkpoint is
exact; after a hard kill up to about one second of acknowledged rows may be published again
on resume (the feature core ignores a redelivered ``transaction_id``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.errors import ConfigurationError


@dataclass(frozen=True)
class Checkpoint:
    fingerprint: str
    rows_done: int
    rows_total: int
    source: str
    topic: str
    updated: str = ""


def fingerprint(path: Path, mapping: Any, topic: str, limit: int | None) -> str:
    """Identity of a publish run: same file (path, size, mtime), mapping, topic and limit."""
    stat = path.stat()
    text = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns,
                       repr(mapping), topic, limit])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_path(state_dir: Path, source: Path, topic: str) -> Path:
    return state_dir / "replay" / f"{source.stem}.{topic}.checkpoint.json"


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None if there is none; a corrupt one is an error."""
    if not path.exists():
        return None
    try:
        return Checkpoint(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"checkpoint {path} is unreadable ({exc}); delete it to "
                                 "start over") from None


def save(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = Checkpoint(**{**asdict(checkpoint),
                            "updated": datetime.now(UTC).isoformat(timespec="seconds")})
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(asdict(stamped), indent=1))
    os.replace(tmp, path)


def resume_row(path: Path, expected: str, resume: bool) -> int:
    """Row to start at: the checkpoint's ``rows_done`` with ``resume``, else 0."""
    found = load(path)
    if not resume or found is None:
        return 0
    if found.fingerprint != expected:
        raise ConfigurationError(
            f"checkpoint {path} is for a different file, mapping, topic or limit "
            f"({found.source} -> {found.topic}); delete it or drop --resume")
    return found.rows_done
