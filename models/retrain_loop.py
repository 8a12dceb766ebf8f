"""The closed loop's check at event time ``now``: observe, judge the triggers, retrain, promote.

One :meth:`RetrainLoop.step` per closed drift window (daily, at midnight in event time):

1. observe the champion (:func:`models.retrain.observe`): its metrics on the latest matured
   window with labels as known at ``now``, fraud labels since the last retrain, and the
   columns in sustained drift the caller passes (from the drift monitor, or offline from
   :class:`drift.sustained.SustainedDrift`);
2. :func:`drift.triggers.update` (pure) decides; decisions that met a reason go to
   ``audit/retrain_triggers.jsonl``;
3. on a firing, :class:`models.retrain.Retrainer` trains a challenger, scores it and the
   champion on the same matured window and promotes it or records why not.

The loop keeps the trigger state and the champion it observes, and reloads the champion
after a promotion. Callers: the demo (live, the drift monitor's verdicts), the closed-loop
test (offline), ``fraudstream retrain`` (one step, state from the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from drift.triggers import TriggerConfig, TriggerDecision, TriggerState, retrained, update
from models.retrain import (
    CHAMPION,
    Retrainer,
    RetrainOutcome,
    observe,
    record_trigger,
    trigger_config_from,
    utc,
)

if TYPE_CHECKING:
    from models.versions import LoadedModel


def epoch_ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


@dataclass(frozen=True)
class LoopStep:
    """What one check saw and did."""

    now: pd.Timestamp
    champion_version: str  # the champion observed (before any promotion in this step)
    decision: TriggerDecision
    matured: dict[str, float]  # the champion's metrics on the latest matured window
    outcome: RetrainOutcome | None = None  # set when the trigger fired

    @property
    def promoted(self) -> bool:
        return self.outcome is not None and self.outcome.promoted


class RetrainLoop:
    """Trigger state and champion across steps; one :class:`Retrainer` does the work."""

    def __init__(self, retrainer: Retrainer, triggers: TriggerConfig | None = None,
                 last_retrain: Any = None) -> None:
        """``last_retrain``: event time of the last retrain (default: the epoch, so the
        schedule is due at once); with none recorded, volume counts every fraud label."""
        self.retrainer = retrainer
        self.triggers = triggers or trigger_config_from(retrainer.settings)
        start = utc(last_retrain) if last_retrain is not None else pd.Timestamp(0, tz="UTC")
        self.state = TriggerState(last_retrain_ms=epoch_ms(start))
        self._champion: LoadedModel | None = None

    @property
    def champion(self) -> LoadedModel:
        if self._champion is None:
            self._champion = self.retrainer.registry.load(CHAMPION)
        return self._champion

    def step(self, frame: pd.DataFrame, now: Any,
             sustained: tuple[str, ...] = ()) -> LoopStep:
        """The check at event time ``now``; ``frame`` as for :meth:`Retrainer.run`."""
        now = utc(now)
        champion = self.champion
        obs, matured = observe(frame, now, champion, self.state, self.retrainer.config,
                               tuple(sustained))
        self.state, decision = update(self.state, obs, self.triggers)
        record_trigger(self.retrainer.settings, decision)
        if not decision.fire:
            return LoopStep(now, champion.version, decision, matured)
        reason = "; ".join(decision.details[r] for r in decision.reasons)
        outcome = self.retrainer.run(frame, now, reason)
        self.state = retrained(self.state, obs.now_ms)
        if outcome.promoted:
            self._champion = None
        return LoopStep(now, champion.version, decision, matured, outcome)
