"""The demo's live act: simulated days through the running system, one day at a time.

For each day: its transactions go to ``transactions`` and the fraud verdicts that arrive
that day to ``labels`` (see :func:`infra.demo_stream.publish_labels` for the order); the
stream stage (features and decision in one hop) decides every transaction, the stage
folds the verdicts into terminal fraud counts; the drift monitor
(:class:`drift.monitor.DriftMonitor`, driven here) windows the ``scores``. At midnight the
monitor judges the day against the champion's reference profile and
:class:`models.retrain_loop.RetrainLoop` checks the triggers, retrains, evaluates and
promotes; after a promotion the demo waits for the stream stage to log the swap, so the next day
is decided by the new champion. Stepping in whole days keeps the timeline exact in event
time; a deployment runs the same steps on the wall clock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from drift.detect import WindowReport
from drift.metrics import DriftMetrics
from drift.monitor import DriftMonitor
from features.core import FEATURE_NAMES
from infra.demo_stream import publish_labels, publish_transactions
from infra.errors import ServiceError
from infra.settings import Settings
from infra.workers import WorkerProcess
from models import audit
from models.retrain_loop import LoopStep, RetrainLoop
from scoring.tail import format_alert
from streams.clients import make_consumer, make_producer

DAY = pd.Timedelta(days=1)
SWAP_MARKER = "scoring with model version {},"  # the stage's Decider logs it on every swap


@dataclass
class Scored:
    """What the live system decided, by transaction id."""

    score: dict[str, float] = field(default_factory=dict)
    decision: dict[str, str] = field(default_factory=dict)
    version: dict[str, str] = field(default_factory=dict)
    differs: Counter[str] = field(default_factory=Counter)  # feature -> served vectors
    differs_on: Counter[int] = field(default_factory=Counter)  # day -> served vectors
    vector_differs: int = 0  # served vector != the feature core's (training) vector
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class LiveResult:
    scored: Scored
    promotions: list[tuple[int, str, pd.Timestamp]]  # (day it took over, version, fit end)
    drift_days: list[tuple[int, tuple[str, ...]]]  # (day, columns at alert)


class LiveDemo:
    """Steps ``frame`` (features and labels of the whole simulation) day by day."""

    def __init__(self, settings: Settings, frame: pd.DataFrame, start: pd.Timestamp,
                 loop: RetrainLoop, scorer: WorkerProcess,
                 say: Callable[[str], None] = print) -> None:
        self.settings, self.frame, self.start = settings, frame, start
        self.loop, self.scorer, self.say = loop, scorer, say
        times = pd.to_datetime(frame["event_time"], utc=True)
        self.day = ((times - start) // DAY).to_numpy()
        self.index = pd.Series(np.arange(len(frame)), index=frame["transaction_id"].to_numpy())
        self.vectors = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
        # its gauges are not served here: a registry of its own, not the process's
        self.monitor = DriftMonitor(settings, metrics=DriftMetrics(CollectorRegistry()))
        self.scored = Scored()

    def label(self, day: int) -> str:
        return f"day {day} ({self.start + day * DAY:%a %d %b})"

    # -- collecting the system's outputs --------------------------------------------------
    def _record(self, raw: bytes | None) -> None:
        record = json.loads(raw or b"null")
        tid = str(record["transaction_id"])
        s = self.scored
        s.score[tid], s.decision[tid] = float(record["score"]), str(record["decision"])
        s.version[tid] = str(record["model_version"]["batch"])
        served = np.array([np.nan if record["features"].get(n) is None
                           else record["features"][n] for n in FEATURE_NAMES], dtype=float)
        i = self.index.get(tid)
        if i is None:
            s.vector_differs += 1
            return
        same = np.isclose(served, self.vectors[i], rtol=1e-9, atol=1e-9, equal_nan=True)
        if not same.all():
            s.vector_differs += 1
            s.differs_on[int(self.day[i])] += 1
            s.differs.update(n for n, ok in zip(FEATURE_NAMES, same, strict=True) if not ok)

    def _collect(self, ids: set[str], alerts: Any, timeout: float = 180.0) -> None:
        """Read ``scores`` (through the monitor) until every id in ``ids`` is decided."""
        deadline = time.monotonic() + timeout
        missing = set(ids) - set(self.scored.score)
        while missing:
            if time.monotonic() > deadline:
                raise ServiceError(f"{len(missing)} transactions not scored after "
                                   f"{timeout:.0f}s; scorer log:\n{self.scorer.log_tail()}")
            for message in self.monitor.poll(0.2, 1000):
                if message.error() is None:
                    self._record(message.value())
            for message in alerts.consume(1000, 0):
                if message.error() is None:
                    alert = json.loads(message.value() or b"null")
                    self.scored.alerts[str(alert["transaction_id"])] = alert
            missing -= set(self.scored.score)

    # -- one day ----------------------------------------------------------------------------
    def run(self, first: int, last: int, shift_day: int, show_alerts: int = 3) -> LiveResult:
        producer = make_producer(self.settings)
        alerts = make_consumer(self.settings, f"fraudstream-demo-alerts-{uuid.uuid4().hex[:8]}")
        alerts.subscribe([self.settings.topic_alerts])
        self.monitor.start()
        promotions: list[tuple[int, str, pd.Timestamp]] = []
        drift_days: list[tuple[int, tuple[str, ...]]] = []
        try:
            for d in range(first, last + 1):
                rows = self.frame.loc[self.day == d]
                midnight = self.start + (d + 1) * DAY
                publish_transactions(self.settings, producer, self.frame, midnight - DAY,
                                     midnight)
                labels = publish_labels(self.settings, producer, self.frame, midnight - DAY,
                                        midnight)
                ids = set(rows["transaction_id"].astype(str))
                self._collect(ids, alerts)
                reports = self.monitor.advance(int(midnight.value // 1_000_000))
                self._day_line(d, rows, labels, reports)
                if reports and reports[-1].alerting:
                    drift_days.append((d, reports[-1].alerting))
                if show_alerts and (d == first or d == shift_day or
                                    (promotions and promotions[-1][0] == d)):
                    self._show_alerts(ids, show_alerts)
                status = self.monitor.status
                step = self.loop.step(self.frame, midnight, status.columns if status else ())
                self._step_lines(d + 1, step)
                if step.promoted and step.outcome is not None:
                    version = step.outcome.challenger_version
                    self._await_swap(version)
                    # its fit rows end where early stopping's validation tail begins
                    fit_end = (pd.Timestamp(step.outcome.windows["eval_start"])
                               - pd.Timedelta(days=self.settings.retrain_valid_days))
                    promotions.append((d + 1, version, fit_end))
        finally:
            alerts.close()
            self.monitor.close()
            producer.flush(10)
        return LiveResult(self.scored, promotions, drift_days)

    def _day_line(self, d: int, rows: pd.DataFrame, labels: int,
                  reports: list[WindowReport]) -> None:
        s = self.scored
        ids = rows["transaction_id"].astype(str)
        versions = Counter(s.version[t] for t in ids)
        fraud = rows["is_fraud"].to_numpy(dtype=bool)
        alerted = np.array([s.decision[t] != "approve" for t in ids])
        by = ", ".join(f"v{v}" for v in sorted(versions, key=int))
        wave = int((rows["scenario"] == "card_testing").sum()) if "scenario" in rows else 0
        self.say(f"{self.label(d)}: {len(rows):,} transactions"
                 + (f" ({wave} card testing)" if wave else "")
                 + f" scored by {by}; alerts {int(alerted.sum())}, of which fraud "
                 f"{int((alerted & fraud).sum())} (frauds that day: {int(fraud.sum())}); "
                 f"fraud labels back: {labels}"
                 + (f"; served vectors that differ from the feature core's: {s.differs_on[d]}"
                    if s.differs_on[d] else ""))
        if reports:
            r = reports[-1]
            warn = [c.column for c in r.columns if c.severity == "warn"]
            self.say(f"    drift vs v{r.reference_version}: "
                     + (f"ALERT {_names(r.alerting)}" if r.alerting else "no alert")
                     + (f"; warn {_names(warn)}" if warn else ""))

    def _show_alerts(self, ids: set[str], n: int) -> None:
        shown = sorted((a for t, a in self.scored.alerts.items() if t in ids),
                       key=lambda a: -float(a["score"]))[:n]
        for alert in shown:
            self.say("    " + format_alert(alert))

    def _step_lines(self, day: int, step: LoopStep) -> None:
        d = step.decision
        at = f"  midnight, day {day}:"
        if d.fire:
            self.say(f"{at} retrain trigger FIRES: "
                     + "; ".join(f"{r}: {d.details[r]}" for r in d.reasons))
        elif d.met:
            self.say(f"{at} trigger {list(d.reasons)} met, not fired: {d.suppressed}")
        if step.outcome is None:
            return
        o = step.outcome
        w = {k: (pd.Timestamp(v) - self.start) / DAY for k, v in o.windows.items()}
        new, old = o.challenger_metrics, o.champion_metrics or {}
        self.say(f"    challenger v{o.challenger_version}: trained on days "
                 f"{w['train_start']:.1f}-{w['eval_start']:.1f}, evaluated with the champion "
                 f"v{o.champion_version} on days {w['eval_start']:.1f}-{w['eval_end']:.1f} "
                 f"({new.get('n_fraud', 0):.0f} matured frauds)")
        self.say(f"    average precision {new['average_precision']:.3f} vs "
                 f"{old.get('average_precision', float('nan')):.3f}, recall at the "
                 f"{self.settings.retrain_budget:.0%} budget {new['recall_at_budget']:.3f} vs "
                 f"{old.get('recall_at_budget', float('nan')):.3f}")
        self.say(f"    -> {o.decision.reason}")
        if o.promoted:
            moves = audit.read(audit.audit_path(self.settings), alias="champion")
            keys = ("time", "alias", "previous_version", "new_version", "actor")
            self.say(f"    audit {audit.audit_path(self.settings)}: "
                     f"{json.dumps({k: moves[-1][k] for k in keys})}")

    def _await_swap(self, version: str) -> None:
        started = time.monotonic()
        if not self.scorer.wait_for_log(SWAP_MARKER.format(version), timeout=60):
            raise ServiceError(f"the scorer did not switch to v{version}:\n"
                               f"{self.scorer.log_tail()}")
        self.say(f"    scorer switched to v{version} after {time.monotonic() - started:.1f}s "
                 "(it follows the champion alias between micro-batches)")


def _names(columns: Any, limit: int = 5) -> str:
    columns = list(columns)
    more = f" (+{len(columns) - limit} more)" if len(columns) > limit else ""
    return ", ".join(columns[:limit]) + more
