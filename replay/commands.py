"""What the ``replay`` and ``train`` commands do, given parsed options (the CLI parses).

* :func:`publish_file`: any mapped history file into the transactions topic, resumable;
* :func:`backtest_file`: one backtest or a prequential run, written to an output folder;
* :func:`normalized_history`: a user file rewritten in fraudstream's own history format
  (Parquet under ``state_dir/replay``) so ``train`` can read it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from infra.settings import Settings
from infra.timestamps import utc
from replay import checkpoint
from replay.backtest import BacktestConfig, feature_frame, run_backtest
from replay.candidates import STREAM_POLICY, PolicySpec, parse_policy, registry_model
from replay.history import write_history
from replay.mapping import ColumnMapping
from replay.outputs import Written, write_outputs
from replay.prequential import run_prequential
from replay.progress import ProgressBar
from replay.publish import PublishResult, publish_history
from replay.validation import load_history

log = logging.getLogger("fraudstream.replay")


def publish_file(settings: Settings, path: Path, mapping: ColumnMapping, *,
                 speed: float | None = None, max_rate: float | None = None,
                 limit: int | None = None, resume: bool = False,
                 checkpoint_path: Path | None = None, progress: bool = True,
                 **publish_options: object) -> tuple[PublishResult, int]:
    """Publish ``path``; returns the result and the row this run started at.

    The checkpoint (default ``state_dir/replay/<file>.<topic>.checkpoint.json``) is written
    about once a second; with ``resume`` the run continues after its ``rows_done``.
    """
    history = load_history(path, mapping, require_labels=False)
    topic = str(publish_options.get("topic") or settings.topic_transactions)
    ckpt = checkpoint_path or checkpoint.default_path(settings.state_dir, path, topic)
    ident = checkpoint.fingerprint(path, mapping, topic, limit)
    start = checkpoint.resume_row(ckpt, ident, resume)
    total = len(history) if limit is None else min(limit, len(history))
    if start:
        log.info("resuming %s at row %d of %d (checkpoint %s)", path, start, total, ckpt)

    def save(rows_done: int) -> None:
        checkpoint.save(ckpt, checkpoint.Checkpoint(ident, rows_done, total, str(path), topic))

    result = publish_history(history, settings, speed=speed, max_rate=max_rate, limit=limit,
                             progress=ProgressBar(offset=start) if progress else None,
                             start_row=start, on_checkpoint=save,
                             **publish_options)  # type: ignore[arg-type]
    return result, start


def normalized_history(settings: Settings, path: Path, mapping: ColumnMapping) -> Path:
    """Validate ``path`` and write it as a fraudstream history Parquet; returns its path."""
    history = load_history(path, mapping, require_labels=True)
    out = settings.state_dir / "replay" / f"{path.stem}.history.parquet"
    return write_history(history, out)


@dataclass(frozen=True)
class BacktestOptions:
    models: Sequence[str] = ()  # aliases or version numbers
    train: bool = False  # also train in-process (implied when no model is given)
    policies: Sequence[str] = ()
    train_days: float | None = 42.0  # docs/evaluation.md: higher AP than 21 on the handbook replica
    delay_days: float = 7.0
    test_days: float = 7.0
    test_end: str | None = None  # date or time (UTC); default: midnight after the last event
    calibration_days: float = 7.0
    budget: float = 0.01
    k: int = 100
    prequential: bool = False
    folds: int | None = None
    step_days: float | None = None
    fmt: str = "parquet"


class Progress(Protocol):
    """Stage progress (``infra.cli_progress.Stages``): the next stage, and one per fold."""

    def next(self) -> None: ...
    def folds(self, done: int, total: int) -> None: ...


STAGES = ("load and validate", "features", "train and score", "write")
PREQUENTIAL_STAGES = ("load and validate", "features")  # then one per fold


def backtest_file(settings: Settings, path: Path, mapping: ColumnMapping,
                  options: BacktestOptions, out_dir: Path, progress: Progress | None = None,
                  ) -> tuple[Written, pd.DataFrame]:
    """Run the backtest ``options`` describe on ``path``; returns files and metrics table.

    ``progress`` advances through :data:`STAGES` (or :data:`PREQUENTIAL_STAGES` and then
    one stage per fold for a prequential run)."""
    step = progress.next if progress is not None else (lambda: None)
    started = time.perf_counter()
    history = load_history(path, mapping, require_labels=True)
    loaded = time.perf_counter()
    step()
    frame, names = feature_frame(history)
    featured = time.perf_counter()
    step()
    models = [registry_model(settings, spec) for spec in options.models]
    policies: list[PolicySpec] = [parse_policy(p) for p in options.policies] or [STREAM_POLICY]
    test_end = utc(options.test_end) if options.test_end else None
    config = BacktestConfig(calibration_days=options.calibration_days, budget=options.budget,
                            k=options.k).with_windows(
        train_days=options.train_days, delay_days=options.delay_days,
        test_days=options.test_days, test_end=test_end, budget=options.budget, k=options.k)
    notes = (f"source: {path} ({len(history):,} transactions); features for all rows in "
             f"{featured - loaded:.1f}s; load and validation {loaded - started:.1f}s",)
    ids = history.attrs.get("integer_ids", ())
    if options.prequential:
        pre = run_prequential(frame, names, models, settings, config, policies=policies,
                              step_days=options.step_days, n_folds=options.folds,
                              progress=progress.folds if progress is not None else None)
        written = write_outputs(out_dir, pre, fmt=options.fmt, notes=notes, integer_ids=ids,
                                title="fraudstream prequential backtest")
        return written, pre.folds
    result = run_backtest(frame, names, models, settings, config, policies=policies,
                          train=options.train or not models)
    step()
    written = write_outputs(out_dir, result, fmt=options.fmt, notes=notes, integer_ids=ids)
    return written, result.metrics
