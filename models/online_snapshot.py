"""Online-model snapshots on disk, and the handle scorers use to pick them up live.

Why files under ``state_dir/online/`` rather than MLflow artifacts: scorers poll for a new
snapshot every few seconds and a ``stat`` + small JSON read costs microseconds with no
server round trip, while the learner writes one every ``online_snapshot_seconds``, which
would flood the MLflow registry with throw-away runs. MLflow remains the record of the
*batch* lifecycle. With scorers on several hosts, ``state_dir/online`` must be a shared
volume (or the store replaced behind the same two methods).

Layout (every write is atomic: temp file, fsync, ``os.replace``)::

    state_dir/online/snapshot-00000042.pkl   the pickled OnlineModel of version 42
    state_dir/online/manifest.json           {"version", "file", "sha256", "frauds", ...}
    state_dir/online/checkpoint.pkl          the learner's own state (model, join, offsets)

The manifest is replaced last, so a reader sees either the old or the new complete
snapshot; the SHA-256 it records is checked before unpickling (the files are written by
our learner into our state folder: pickle is only ever read from there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infra.errors import ModelError
from models.online import CombineRule, FloatArray, OnlineModel, combine

log = logging.getLogger("fraudstream.models.online")

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.pkl"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SnapshotStore:
    """Versioned model snapshots and the learner checkpoint in one folder."""

    def __init__(self, directory: Path, keep: int = 5) -> None:
        self.directory = directory
        self.keep = keep

    def manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ModelError(f"unreadable online-model manifest: {exc}") from exc
        return data if isinstance(data, dict) else None

    def write(self, model: OnlineModel, meta: dict[str, Any] | None = None) -> int:
        """Publish ``model`` as the next version; returns the version number."""
        current = self.manifest()
        version = int(current["version"]) + 1 if current else 1
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        name = f"snapshot-{version:08d}.pkl"
        atomic_write(self.directory / name, blob)
        manifest = {
            "version": version,
            "file": name,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "frauds": model.frauds,
            "genuines": model.genuines,
            "feature_names": list(model.feature_names),
            "negative_rate": model.negative_rate,
            **(meta or {}),
        }
        atomic_write(self.directory / MANIFEST, json.dumps(manifest, indent=1).encode())
        for old in sorted(self.directory.glob("snapshot-*.pkl"))[: -self.keep]:
            old.unlink(missing_ok=True)
        return version

    def read(self, manifest: dict[str, Any]) -> OnlineModel:
        blob = (self.directory / str(manifest["file"])).read_bytes()
        if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
            raise ModelError(f"online snapshot {manifest['file']} does not match its checksum")
        model = pickle.loads(blob)  # noqa: S301 - our own file, checksum verified above
        if not isinstance(model, OnlineModel):
            raise ModelError(f"{manifest['file']} holds {type(model).__name__}, no OnlineModel")
        return model

    def save_checkpoint(self, state: Any) -> None:
        atomic_write(self.directory / CHECKPOINT, pickle.dumps(state, pickle.HIGHEST_PROTOCOL))

    def load_checkpoint(self) -> Any | None:
        path = self.directory / CHECKPOINT
        if not path.exists():
            return None
        return pickle.loads(path.read_bytes())  # noqa: S301 - written by our learner only


class OnlineModelHandle:
    """What a scorer holds: the latest snapshot, reloaded between micro-batches.

    ``maybe_reload()`` checks the manifest at most every ``reload_seconds`` (monotonic
    clock, injectable) and swaps in a new version atomically; a missing or broken snapshot
    keeps the current model (logged) and never raises into the scoring loop.
    """

    def __init__(
        self,
        store: SnapshotStore,
        rule: CombineRule,
        reload_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.rule = rule
        self.reload_seconds = reload_seconds
        self._clock = clock
        self._checked = -float("inf")
        self.model: OnlineModel | None = None
        self.version: str | None = None

    @property
    def weight(self) -> float:
        return 0.0 if self.model is None else self.rule.weight_for(self.model.frauds)

    def maybe_reload(self, force: bool = False) -> bool:
        """True when a new snapshot version was loaded."""
        now = self._clock()
        if not force and now - self._checked < self.reload_seconds:
            return False
        self._checked = now
        try:
            manifest = self.store.manifest()
            if manifest is None or str(manifest.get("version")) == self.version:
                return False
            model = self.store.read(manifest)
        except (ModelError, OSError, pickle.UnpicklingError, KeyError) as exc:
            log.warning("online snapshot not loaded (keeping version %s): %s", self.version, exc)
            return False
        self.model, self.version = model, str(manifest["version"])
        log.info("online model version %s (%d frauds learned)", self.version, model.frauds)
        return True

    def predict_many(self, matrix: FloatArray) -> FloatArray | None:
        """Calibrated online fraud probabilities, or None when there is no snapshot yet."""
        return None if self.model is None else self.model.predict_many(matrix)

    def combine(self, xgb: FloatArray, matrix: FloatArray) -> tuple[FloatArray, FloatArray | None]:
        """``(combined scores, online probabilities or None)`` for rows of ``matrix``."""
        model = self.model
        if model is None:
            return np.asarray(xgb, dtype=np.float64), None
        probabilities, lift = model.outputs(matrix)
        return combine(xgb, lift, self.rule.weight_for(model.frauds)), probabilities
