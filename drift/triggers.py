"""Retrain triggers: when to retrain the batch model, decided on event time only.

Four reasons, each a condition on one :class:`Observation` (what is known at ``now_ms``):

- ``drift``: columns in sustained drift (:class:`drift.sustained.SustainedDrift`, already
  debounced as n of the last m windows);
- ``decay``: the champion's recall at the alert budget or average precision on the latest
  *matured* window fell by more than a relative tolerance below its registered test
  metrics, on a window with enough matured frauds to judge, in ``decay_confirmations``
  consecutive checks (debounce: one bad window is noise);
- ``volume``: at least ``volume_frauds`` fraud labels arrived since the last training
  (fraud labels, not all labels: genuine labels arrive at traffic rate by maturity, so
  counting them would be a schedule in disguise);
- ``schedule``: ``schedule_days`` of event time since the last training.

Rate limit: nothing fires within ``min_interval_days`` of the last retrain or firing (a
firing is a retrain request, whether or not the caller has run it yet); a condition met
inside that interval yields a *suppressed* decision (recorded, not acted on). After a firing
the decay streak restarts, so a retrain that did not help needs fresh evidence to fire again.

Pure: :func:`update` maps ``(state, observation)`` to ``(state, decision)``; no wall clock,
no I/O. The audit log of decisions is the caller's (:mod:`models.retrain`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

DAY_MS = 86_400_000
Reason = Literal["drift", "decay", "volume", "schedule"]
REASONS: tuple[Reason, ...] = ("drift", "decay", "volume", "schedule")


@dataclass(frozen=True)
class TriggerConfig:
    """Trigger thresholds; defaults and why are in ``docs/retraining.md``."""

    min_interval_days: float = 7.0
    decay_recall_drop: float = 0.15  # relative drop of recall at the alert budget
    decay_ap_drop: float = 0.25  # relative drop of average precision
    decay_confirmations: int = 2
    min_matured_frauds: int = 30
    volume_frauds: int | None = 500
    schedule_days: float | None = 30.0
    drift_min_columns: int = 1

    def __post_init__(self) -> None:
        if self.min_interval_days < 0 or self.decay_confirmations < 1:
            raise ValueError("need min_interval_days >= 0 and decay_confirmations >= 1")
        if not (0 < self.decay_recall_drop < 1 and 0 < self.decay_ap_drop < 1):
            raise ValueError("decay drops are relative: need 0 < drop < 1")
        if self.drift_min_columns < 1 or self.min_matured_frauds < 1:
            raise ValueError("need drift_min_columns >= 1 and min_matured_frauds >= 1")


@dataclass(frozen=True)
class Performance:
    """A model's ranking quality on one window: recall at the alert budget, AP, frauds."""

    recall_at_budget: float
    average_precision: float
    n_fraud: int

    @classmethod
    def from_metrics(cls, metrics: dict[str, float]) -> Performance:
        """From a :func:`models.metrics.fraud_metrics` dict (registered or freshly computed)."""
        n = metrics.get("n_fraud", float("nan"))
        return cls(
            float(metrics.get("recall_at_budget", float("nan"))),
            float(metrics.get("average_precision", float("nan"))),
            0 if math.isnan(n) else int(n),
        )


@dataclass(frozen=True)
class Observation:
    """What is known at ``now_ms`` (event time)."""

    now_ms: int
    sustained_drift: tuple[str, ...] = ()
    performance: Performance | None = None  # champion on the latest matured window
    reference: Performance | None = None  # champion's registered test metrics
    new_fraud_labels: int = 0  # fraud labels arrived since the last training


@dataclass(frozen=True)
class TriggerState:
    """Explicit state: when the last retrain happened, the decay streak, the last firing."""

    last_retrain_ms: int
    decay_streak: int = 0
    last_fire_ms: int | None = None


@dataclass(frozen=True)
class TriggerDecision:
    """One evaluation: the reasons met (with details), and whether it fires."""

    now_ms: int
    fire: bool
    reasons: tuple[Reason, ...]
    details: dict[str, str]
    suppressed: str | None = None  # why reasons that were met did not fire

    @property
    def met(self) -> bool:
        return bool(self.reasons)

    def record(self) -> dict[str, Any]:
        """JSON-ready form for ``retrain_triggers.jsonl``."""
        return {**asdict(self), "reasons": list(self.reasons)}


def _decayed(obs: Observation, config: TriggerConfig) -> str | None:
    """Why the champion's matured-window performance counts as decayed, or None."""
    perf, ref = obs.performance, obs.reference
    if perf is None or ref is None or perf.n_fraud < config.min_matured_frauds:
        return None
    why = []
    floor = (1 - config.decay_recall_drop) * ref.recall_at_budget
    if not math.isnan(floor) and perf.recall_at_budget < floor:
        why.append(f"recall@budget {perf.recall_at_budget:.3f} < {floor:.3f} "
                   f"({1 - config.decay_recall_drop:.2f} x {ref.recall_at_budget:.3f})")
    floor = (1 - config.decay_ap_drop) * ref.average_precision
    if not math.isnan(floor) and perf.average_precision < floor:
        why.append(f"AP {perf.average_precision:.3f} < {floor:.3f} "
                   f"({1 - config.decay_ap_drop:.2f} x {ref.average_precision:.3f})")
    return "; ".join(why) + f" on {perf.n_fraud} matured frauds" if why else None


def update(
    state: TriggerState, obs: Observation, config: TriggerConfig | None = None
) -> tuple[TriggerState, TriggerDecision]:
    """Judge ``obs``; returns the new state and the decision (fire, or why not).

    >>> s = TriggerState(last_retrain_ms=0)
    >>> s, d = update(s, Observation(now_ms=31 * DAY_MS))
    >>> d.fire, d.reasons
    (True, ('schedule',))
    >>> s, d = update(s, Observation(now_ms=32 * DAY_MS, sustained_drift=("amount",)))
    >>> d.fire, d.suppressed
    (False, 'rate limited: last retrain or trigger 1.0 days ago < 7.0')
    """
    config = config or TriggerConfig()
    details: dict[str, str] = {}
    if len(obs.sustained_drift) >= config.drift_min_columns:
        details["drift"] = "sustained drift on " + ", ".join(obs.sustained_drift)
    decay = _decayed(obs, config)
    streak = state.decay_streak + 1 if decay else 0
    if decay:
        details["decay"] = f"{decay} (check {streak}/{config.decay_confirmations})"
    if config.volume_frauds is not None and obs.new_fraud_labels >= config.volume_frauds:
        details["volume"] = (f"{obs.new_fraud_labels} new fraud labels >= "
                             f"{config.volume_frauds}")
    last = max(state.last_retrain_ms, state.last_fire_ms or state.last_retrain_ms)
    since_days = (obs.now_ms - state.last_retrain_ms) / DAY_MS
    quiet_days = (obs.now_ms - last) / DAY_MS  # since the last retrain or firing
    if config.schedule_days is not None and since_days >= config.schedule_days:
        details["schedule"] = f"{since_days:.1f} days since the last retrain"
    reasons: tuple[Reason, ...] = tuple(
        r for r in REASONS
        if r in details and (r != "decay" or streak >= config.decay_confirmations)
    )
    suppressed = None
    if decay and "decay" not in reasons:
        suppressed = f"decay not confirmed yet ({streak}/{config.decay_confirmations})"
    if reasons and quiet_days < config.min_interval_days:
        suppressed = (f"rate limited: last retrain or trigger {quiet_days:.1f} days ago < "
                      f"{config.min_interval_days}")
    fire = bool(reasons) and quiet_days >= config.min_interval_days
    new_state = replace(
        state,
        decay_streak=0 if fire else streak,
        last_fire_ms=obs.now_ms if fire else state.last_fire_ms,
    )
    return new_state, TriggerDecision(obs.now_ms, fire, reasons, details, suppressed)


def retrained(state: TriggerState, now_ms: int) -> TriggerState:
    """State after a retrain at ``now_ms`` (attempted, promoted or not): restarts the clocks."""
    return TriggerState(last_retrain_ms=now_ms, decay_streak=0, last_fire_ms=state.last_fire_ms)
