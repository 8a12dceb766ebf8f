"""``fraudstream retrain``: one trigger check (and retrain if due) over a labeled history.

One :meth:`models.retrain_loop.RetrainLoop.step` for a batch job (cron, CI, or
``--every`` in a long-running process): the training set is either a history file's
features by the feature core (``--history``) or, without a file, the offline store joined
point in time with the ``labels`` topic (:mod:`models.retrain_offline`); ``now`` = the
end of the data's last day (or ``--now``), the champion's drift over the last
``drift_sustained_lookback`` daily windows against its reference profile
(:class:`drift.sustained.SustainedDrift`), its matured-window metrics against its
registered ones, fraud labels since the last retrain.
The last retrain is read from ``retrain.jsonl``; with none recorded, the schedule and the
volume count from the epoch (a first run is due). ``force`` retrains whatever the triggers
say (recorded as reason ``manual``). Windows, triggers and guardrails come from the
``FRAUDSTREAM_RETRAIN_*`` / ``FRAUDSTREAM_PROMOTION_*`` settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from drift.batch import DAY_MS, stream_reports
from drift.monitor import thresholds_from
from drift.reference import SCORE, Reference
from drift.sustained import SustainedDrift
from drift.triggers import TriggerConfig, TriggerDecision
from infra.settings import Settings
from infra.timestamps import utc
from models.retrain import Retrainer, RetrainOutcome, retrain_log_path
from models.retrain_loop import RetrainLoop


@dataclass(frozen=True)
class JobResult:
    now: pd.Timestamp
    decision: TriggerDecision | None  # None: no champion yet, or forced
    outcome: RetrainOutcome | None


def last_retrain_ms(settings: Settings) -> int:
    path = retrain_log_path(settings)
    if not path.exists():
        return 0
    started = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    times = [pd.Timestamp(r["event_time"]) for r in started if r.get("step") == "started"]
    return int(max(times).value // 1_000_000) if times else 0


def sustained_drift(settings: Settings, frame: pd.DataFrame, at: pd.Timestamp,
                    retrainer: Retrainer) -> tuple[str, ...]:
    """Columns in sustained drift over the daily windows of the last ``lookback`` days."""
    registry = retrainer.registry
    champion = registry.load("champion")
    version, profile = registry.load_reference()
    reference = Reference.from_profile(profile, version)
    lookback = settings.drift_sustained_lookback
    times = pd.to_datetime(frame["event_time"], utc=True)
    recent = ((times >= at - pd.Timedelta(days=lookback)) & (times < at)).to_numpy()
    rows = frame.loc[recent]
    columns = {n: rows[n].to_numpy() for n in champion.feature_names}
    columns[SCORE] = champion.predict(rows)
    sustained = SustainedDrift(settings.drift_sustained_windows, lookback)
    status: tuple[str, ...] = ()
    event_ms = times[recent].astype("int64").to_numpy() // 1_000_000
    for report in stream_reports(event_ms, columns, reference, thresholds_from(settings),
                                 size=DAY_MS, flush=True):
        status = sustained.update(report).columns
    return status


def load_frame(settings: Settings, history_path: Path | None) -> pd.DataFrame:
    """Labels and point-in-time features: from ``history_path``, or the offline store."""
    if history_path is None:
        from models.retrain_offline import offline_training_frame

        return offline_training_frame(settings)
    from models.pipeline import training_frame
    from replay.history import read_history

    return training_frame(read_history(history_path))


def run_job(settings: Settings, history_path: Path | None, *, force: bool = False,
            now: Any = None, triggers: TriggerConfig | None = None) -> JobResult:
    """One check at ``now`` (default: midnight after the data's last event)."""
    frame = load_frame(settings, history_path)
    times = pd.to_datetime(frame["event_time"], utc=True)
    at = utc(now) if now is not None else times.max().floor("D") + pd.Timedelta(days=1)
    retrainer = Retrainer(settings)
    if force or retrainer.registry.alias_version("champion") is None:
        reason = "manual (--force)" if force else "no champion registered"
        return JobResult(at, None, retrainer.run(frame, at, reason))
    last = pd.Timestamp(last_retrain_ms(settings), unit="ms", tz="UTC")
    loop = RetrainLoop(retrainer, triggers, last_retrain=last)
    step = loop.step(frame, at, sustained_drift(settings, frame, at, retrainer))
    return JobResult(at, step.decision, step.outcome)
