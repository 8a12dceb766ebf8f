"""``fraudstream retrain``: one trigger check (and retrain if due) over a labeled history.

The adapter around :mod:`drift.triggers` and :class:`models.retrain.Retrainer` for a batch
job (cron, CI, the demo): features of the history by the feature core, ``now`` = the end of
the history's last day (or ``--now``), the champion's drift over the last ``m`` daily
windows against its reference profile (:class:`drift.sustained.SustainedDrift`), its
matured-window metrics against its registered ones, fraud labels since the last retrain.
The last retrain is read from ``retrain.jsonl``; with none recorded, the schedule and the
volume count from the epoch (a first run is due). ``force`` retrains whatever the triggers
say (recorded as reason ``manual``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from drift.batch import DAY_MS, stream_reports
from drift.detect import DriftThresholds
from drift.reference import SCORE, Reference
from drift.sustained import SustainedDrift
from drift.triggers import TriggerConfig, TriggerDecision, TriggerState, update
from infra.settings import Settings
from models.retrain import (
    Retrainer,
    RetrainOutcome,
    observe,
    record_trigger,
    retrain_log_path,
    utc,
)


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


def run_job(settings: Settings, history_path: Path, *, force: bool = False,
            now: str | None = None, triggers: TriggerConfig | None = None,
            sustained_n: int = 3, sustained_m: int = 5) -> JobResult:
    from models.pipeline import training_frame
    from models.registry import ModelRegistry
    from replay.history import read_history

    frame = training_frame(read_history(history_path))
    times = pd.to_datetime(frame["event_time"], utc=True)
    at = utc(now) if now else times.max().floor("D") + pd.Timedelta(days=1)
    registry = ModelRegistry(settings)
    retrainer = Retrainer(settings, registry)
    if force or registry.alias_version("champion") is None:
        reason = "manual (--force)" if force else "no champion registered"
        return JobResult(at, None, retrainer.run(frame, at, reason))
    champion = registry.load("champion")
    version, profile = registry.load_reference()
    reference = Reference.from_profile(profile, version)
    recent = ((times >= at - pd.Timedelta(days=sustained_m)) & (times < at)).to_numpy()
    rows = frame.loc[recent]
    columns = {n: rows[n].to_numpy() for n in champion.feature_names}
    columns[SCORE] = champion.predict(rows)
    thresholds = DriftThresholds(
        settings.drift_psi_warn, settings.drift_psi_alert, settings.drift_ks_alpha,
        settings.drift_ks_min_statistic, settings.drift_correction, settings.drift_min_rows,
        skip=settings.drift_skip_columns)
    sustained = SustainedDrift(sustained_n, sustained_m)
    status: tuple[str, ...] = ()
    event_ms = times[recent].astype("int64").to_numpy() // 1_000_000
    for report in stream_reports(event_ms, columns, reference, thresholds, size=DAY_MS,
                                 flush=True):
        status = sustained.update(report).columns
    state = TriggerState(last_retrain_ms=last_retrain_ms(settings))
    obs, _ = observe(frame, at, champion, state, retrainer.config, status)
    _, decision = update(state, obs, triggers)
    record_trigger(settings, decision)
    if not decision.fire:
        return JobResult(at, decision, None)
    reason = "; ".join(decision.details[r] for r in decision.reasons)
    return JobResult(at, decision, retrainer.run(frame, at, reason))
