"""Lineage of a registered version: which code, which data, which libraries, which seed.

A bank must be able to say, for any score it acted on, what produced the model. Every
version therefore records (as ``lineage.*`` tags on the version and its run, and as
``lineage.json``):

- ``git_commit`` of the working tree that trained it (``unknown`` outside a git checkout,
  with ``git_dirty`` true when tracked files had uncommitted changes);
- ``data_hash``: SHA-256 of the training frame's content (row order and column names
  included), so two versions trained on the same rows share it and any change shows;
- ``data_start`` / ``data_end``: the event-time span of the frame, beside the train and test
  windows the registry already tags;
- ``rows`` / ``frauds``: size and fraud count of the frame, and of the fit and test sets;
- ``packages``: versions of xgboost, river, feast, numpy, pandas and mlflow;
- ``seed`` of the training run;
- ``label_delay_days``: the label delay ``d`` its delayed-window features were computed with
  (:func:`features.terminal.label_delay`); a version is refused where it would be served
  with features of another ``d`` (:meth:`models.registry.ModelRegistry.load_version`).

Pure except :func:`git_commit` (one bounded ``git`` call) and package metadata reads.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.terminal import LABEL_DELAY_DAYS, label_delay

if TYPE_CHECKING:
    from models.train import TrainResult

PACKAGES = ("xgboost", "river", "feast", "numpy", "pandas", "mlflow")
_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DataLineage:
    """What the training data was: content hash, event-time span, size, frauds."""

    data_hash: str
    data_start: str
    data_end: str
    rows: int
    frauds: int
    source: str = ""  # e.g. the history file, or "offline store"


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content, column names and row order (index ignored).

    >>> a = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
    >>> frame_hash(a) == frame_hash(a.copy()) and frame_hash(a) != frame_hash(a[::-1])
    True
    """
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def data_lineage(frame: pd.DataFrame, source: str = "") -> DataLineage:
    """Lineage of a training frame with ``event_time`` and ``is_fraud`` columns."""
    times = pd.to_datetime(frame["event_time"], utc=True)
    return DataLineage(
        data_hash=frame_hash(frame),
        data_start=times.min().isoformat() if len(frame) else "",
        data_end=times.max().isoformat() if len(frame) else "",
        rows=len(frame),
        frauds=int(frame["is_fraud"].astype(bool).sum()),
        source=source,
    )


def git_commit(root: Path = _ROOT) -> tuple[str, bool]:
    """``(commit, dirty)`` of the checkout holding the code; ``("unknown", False)`` if none."""
    try:
        head = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", str(root), "rev-parse", "HEAD"],  # noqa: S607
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        status = subprocess.run(  # noqa: S603
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return head or "unknown", bool(status)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package (``xgboost-cpu`` counts as xgboost); ``absent``."""
    found = {}
    for name in names:
        for dist in (name, f"{name}-cpu"):
            try:
                found[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            found[name] = "absent"
    return found


def lineage_record(result: TrainResult, data: DataLineage | None) -> dict[str, Any]:
    """The full lineage of one training run (JSON-friendly)."""
    commit, dirty = git_commit()
    counts = result.counts
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "data": asdict(data) if data is not None else None,
        "windows": dict(result.windows),
        "fit_rows": counts.get("fit"),
        "fit_frauds": counts.get("fit_fraud"),
        "test_rows": counts.get("test"),
        "test_frauds": counts.get("test_fraud"),
        "packages": package_versions(),
        "seed": result.params.get("seed"),
        "label_delay_days": label_delay(),
    }


def lineage_tags(record: dict[str, Any]) -> dict[str, str]:
    """Flat ``lineage.*`` tags (MLflow tag values are strings) of :func:`lineage_record`."""
    tags = {
        "lineage.git_commit": str(record["git_commit"]),
        "lineage.git_dirty": str(record["git_dirty"]).lower(),
        "lineage.seed": str(record["seed"]),
        "lineage.label_delay_days": str(record.get("label_delay_days", LABEL_DELAY_DAYS)),
        **{f"lineage.package.{k}": v for k, v in record["packages"].items()},
    }
    data = record.get("data")
    if data:
        tags |= {f"lineage.{k}": str(v) for k, v in data.items() if v != ""}
    for key in ("fit_rows", "fit_frauds", "test_rows", "test_frauds"):
        if record.get(key) is not None:
            tags[f"lineage.{key}"] = str(record[key])
    return tags


def read_lineage(tags: dict[str, str]) -> dict[str, str]:
    """The ``lineage.*`` tags of a version or run, without the prefix."""
    return {k.removeprefix("lineage."): v for k, v in tags.items() if k.startswith("lineage.")}


def trained_label_delay(tags: dict[str, str]) -> int:
    """The label delay ``d`` a version was trained with, from its tags (versions from before
    the setting existed were all trained with the former fixed :data:`LABEL_DELAY_DAYS`)."""
    return int(tags.get("lineage.label_delay_days", LABEL_DELAY_DAYS))
