"""Retraining: as-of-now training sets, a challenger, champion-vs-challenger, promotion.

Protocol at event time ``now`` (windows in days, :class:`RetrainConfig`)::

    [now-M-E-T ........ now-M-E) [now-M-E ...... now-M) [now-M ... now)
     challenger's train window    evaluation window      labels still maturing (unused)
                                  ("latest matured")

- **Labels as of now** (:func:`labels_as_of`): a row is fraud only if its fraud label
  arrived by ``now``; everything else counts as genuine, as the label store held it then.
  Features come from the feature core, which applies labels at their ``label_time`` (the
  point-in-time rule for label-aware features), so nothing learned after a row reaches its
  vector, and nothing learned after ``now`` reaches the training set.
- **Evaluation window**: the latest ``E`` days whose labels have had ``M`` days to mature.
  Champion and challenger are scored on exactly those rows with :func:`window_metrics`
  (same labels, same budget, same code); the challenger never trained on them.
- The challenger is registered with alias ``challenger`` (its test metrics are the
  evaluation window's, which later serve as its decay reference), and
  :func:`models.promotion.decide` moves ``champion`` to it or records why not.

Every step appends a JSON line to ``state_dir/audit/retrain.jsonl`` (event time ``now`` and
wall-clock ``time``); alias moves also go to the registry's ``model_aliases.jsonl``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from drift.triggers import (
    Observation,
    Performance,
    TriggerConfig,
    TriggerDecision,
    TriggerState,
)
from infra.settings import Settings
from infra.timestamps import utc
from models import audit
from models.metrics import fraud_metrics
from models.promotion import PromotionDecision, PromotionPolicy, decide
from models.train import TrainConfig, TrainResult, train_model

if TYPE_CHECKING:
    from models.registry import ModelRegistry
    from models.versions import LoadedModel

log = logging.getLogger("fraudstream.models.retrain")

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class RetrainConfig:
    """Windows of the protocol (days) and booster settings; see ``docs/retraining.md``."""

    train_days: float = 28.0
    eval_days: float = 7.0
    maturity_days: float = 7.0
    valid_days: float = 7.0  # tail of the train window used for early stopping
    budget: float = 0.01
    k: int = 100
    booster: TrainConfig = field(default_factory=TrainConfig)  # windows here are ignored

    def __post_init__(self) -> None:
        if min(self.train_days, self.eval_days, self.valid_days) <= 0 or self.maturity_days < 0:
            raise ValueError("need train_days, eval_days, valid_days > 0 and maturity_days >= 0")
        if self.valid_days >= self.train_days:
            raise ValueError("valid_days is the train window's tail: need valid < train_days")
        if not 0 < self.budget < 1 or self.k < 1:
            raise ValueError("need 0 < budget < 1 and k >= 1")

    def windows(self, now: pd.Timestamp) -> dict[str, pd.Timestamp]:
        eval_end = now - pd.Timedelta(days=self.maturity_days)
        eval_start = eval_end - pd.Timedelta(days=self.eval_days)
        return {"train_start": eval_start - pd.Timedelta(days=self.train_days),
                "eval_start": eval_start, "eval_end": eval_end, "now": now}

    def train_config(self, now: pd.Timestamp) -> TrainConfig:
        return replace(
            self.booster, test_end=now - pd.Timedelta(days=self.maturity_days),
            test_days=self.eval_days, delay_days=0.0, train_days=self.train_days,
            valid_days=self.valid_days, labels_known_at="test_start",
            unknown_labels="genuine", budget=self.budget, k=self.k)


def retrain_config_from(settings: Settings) -> RetrainConfig:
    """Windows and budget from ``FRAUDSTREAM_RETRAIN_*`` (booster settings: the defaults)."""
    s = settings
    return RetrainConfig(train_days=s.retrain_train_days, eval_days=s.retrain_eval_days,
                         maturity_days=s.retrain_maturity_days, valid_days=s.retrain_valid_days,
                         budget=s.retrain_budget, k=s.retrain_k)


def trigger_config_from(settings: Settings) -> TriggerConfig:
    """Trigger thresholds from ``FRAUDSTREAM_RETRAIN_*`` (0 turns volume or schedule off)."""
    s = settings
    return TriggerConfig(
        min_interval_days=s.retrain_min_interval_days,
        decay_recall_drop=s.retrain_decay_recall_drop, decay_ap_drop=s.retrain_decay_ap_drop,
        decay_confirmations=s.retrain_decay_confirmations,
        min_matured_frauds=s.retrain_min_matured_frauds,
        volume_frauds=s.retrain_volume_frauds or None,
        schedule_days=s.retrain_schedule_days or None,
        drift_min_columns=s.retrain_drift_min_columns)


def promotion_policy_from(settings: Settings) -> PromotionPolicy:
    """Guardrails from ``FRAUDSTREAM_PROMOTION_*``."""
    s = settings
    return PromotionPolicy(
        primary_metric=s.promotion_primary_metric, min_improvement=s.promotion_min_improvement,
        guardrail_metric=s.promotion_guardrail_metric,
        recall_tolerance=s.promotion_recall_tolerance, min_frauds=s.promotion_min_frauds)


def labels_as_of(frame: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Rows before ``now`` with their labels as known at ``now`` (see the module doc).

    ``is_fraud`` keeps only frauds reported by ``now``; ``label_time`` becomes the event
    time for them and NaT for the others (so :func:`train_model` with
    ``unknown_labels="genuine"`` reads exactly the as-of-now labels).
    """
    times = pd.to_datetime(frame["event_time"], utc=True)
    rows = frame.loc[(times < now).to_numpy()].copy()
    label_times = pd.to_datetime(rows["label_time"], utc=True)
    known = (label_times.notna() & (label_times <= now)).to_numpy()
    fraud = rows["is_fraud"].to_numpy(dtype=bool) & known
    rows["is_fraud"] = fraud
    rows["label_time"] = pd.to_datetime(rows["event_time"], utc=True).where(fraud, pd.NaT)
    return rows


def window_rows(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    times = pd.to_datetime(frame["event_time"], utc=True)
    return ((times >= start) & (times < end)).to_numpy()


def window_metrics(frame: pd.DataFrame, scores: np.ndarray, budget: float,
                   k: int) -> dict[str, float]:
    """:func:`fraud_metrics` of ``scores`` on ``frame``'s rows (its labels as given)."""
    return fraud_metrics(
        frame["is_fraud"].to_numpy(dtype=np.int8), scores, frame["amount"].to_numpy(),
        frame["card_id"].to_numpy(), pd.to_datetime(frame["event_time"], utc=True).dt.floor("D"),
        budget=budget, k=k)


def matured_performance(model: LoadedModel, frame: pd.DataFrame, now: pd.Timestamp,
                        config: RetrainConfig) -> dict[str, float]:
    """``model``'s metrics on the latest matured window at ``now``, labels as of ``now``."""
    w = config.windows(now)
    labeled = labels_as_of(frame, now)
    rows = labeled.loc[window_rows(labeled, w["eval_start"], w["eval_end"])]
    if rows.empty:
        return {"n": 0.0, "n_fraud": 0.0}
    return window_metrics(rows, model.predict(rows), config.budget, config.k)


def new_fraud_labels(frame: pd.DataFrame, since: pd.Timestamp, now: pd.Timestamp) -> int:
    """Fraud labels that arrived in ``(since, now]``."""
    label_times = pd.to_datetime(frame["label_time"], utc=True)
    hit = frame["is_fraud"].to_numpy(dtype=bool) & ((label_times > since) & (label_times <= now))
    return int(hit.sum())


def observe(frame: pd.DataFrame, now: pd.Timestamp, champion: LoadedModel,
            state: TriggerState, config: RetrainConfig,
            sustained: tuple[str, ...] = ()) -> tuple[Observation, dict[str, float]]:
    """The trigger :class:`Observation` at ``now`` and the champion's matured-window metrics."""
    metrics = matured_performance(champion, frame, now, config)
    since = pd.Timestamp(state.last_retrain_ms, unit="ms", tz="UTC")
    obs = Observation(
        now_ms=int(now.value // 1_000_000), sustained_drift=sustained,
        performance=Performance.from_metrics(metrics) if metrics.get("n_fraud") else None,
        reference=Performance.from_metrics(champion.metrics) if champion.metrics else None,
        new_fraud_labels=new_fraud_labels(frame, since, now))
    return obs, metrics


def trigger_log_path(settings: Settings) -> Path:
    return settings.state_dir / "audit" / "retrain_triggers.jsonl"


def retrain_log_path(settings: Settings) -> Path:
    return settings.state_dir / "audit" / "retrain.jsonl"


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def record_trigger(settings: Settings, decision: TriggerDecision) -> None:
    """Append a decision that met a reason (fired or suppressed); quiet checks are not kept."""
    if decision.met or decision.suppressed:
        audit.append(trigger_log_path(settings), {
            "time": datetime.now(UTC).isoformat(), "event_time": _iso(decision.now_ms),
            **decision.record()})


@dataclass(frozen=True)
class RetrainOutcome:
    now: pd.Timestamp
    challenger_version: str
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    challenger_metrics: dict[str, float]
    decision: PromotionDecision
    windows: dict[str, str]

    @property
    def promoted(self) -> bool:
        return self.decision.promote


class Retrainer:
    """Runs one retrain at a time against one registry; writes ``retrain.jsonl``."""

    def __init__(self, settings: Settings, registry: ModelRegistry | None = None,
                 config: RetrainConfig | None = None, policy: PromotionPolicy | None = None,
                 feature_names: tuple[str, ...] | None = None,
                 actor: str = "fraudstream.retrain") -> None:
        from features.core import FEATURE_NAMES
        from features.definitions import FEATURE_SERVICE_NAME
        from models.registry import ModelRegistry

        self.settings = settings
        self.registry = registry or ModelRegistry(settings)
        self.config = config or retrain_config_from(settings)
        self.policy = policy or promotion_policy_from(settings)
        self.feature_names = tuple(feature_names or FEATURE_NAMES)
        self.feature_service = FEATURE_SERVICE_NAME
        self.actor = actor
        self.log_path = retrain_log_path(settings)

    def _audit(self, now: pd.Timestamp, step: str, **fields: Any) -> None:
        audit.append(self.log_path, {"time": datetime.now(UTC).isoformat(),
                                     "event_time": now.isoformat(), "step": step, **fields})

    def _champion(self) -> LoadedModel | None:
        if self.registry.alias_version(CHAMPION) is None:
            return None
        return self.registry.load(CHAMPION)

    def run(self, frame: pd.DataFrame, now: Any, reason: str) -> RetrainOutcome:
        """Train, evaluate, register and maybe promote at event time ``now``.

        ``frame``: labels and features (point in time) of the history up to at least ``now``;
        later rows are ignored. Raises ``ModelError`` if the windows hold too little data.
        """
        now = utc(now)
        windows = self.config.windows(now)
        self._audit(now, "started", reason=reason,
                    windows={k: v.isoformat() for k, v in windows.items()})
        labeled = labels_as_of(frame, now)
        result: TrainResult = train_model(
            labeled, self.feature_names, self.config.train_config(now),
            nthread=self.settings.xgb_nthread, seed=self.settings.seed)
        self._audit(now, "trained", counts=result.counts, best_iteration=result.best_iteration,
                    windows=result.windows)
        evaluation = labeled.loc[window_rows(labeled, windows["eval_start"], windows["eval_end"])]
        matrix = evaluation[list(self.feature_names)].to_numpy(dtype=np.float64)
        challenger = window_metrics(evaluation, np.asarray(result.booster.inplace_predict(matrix)),
                                    self.config.budget, self.config.k)
        champion = self._champion()
        champion_metrics = (window_metrics(evaluation, champion.predict(evaluation),
                                           self.config.budget, self.config.k)
                            if champion is not None else None)
        self._audit(now, "evaluated", challenger=_clean(challenger),
                    champion=_clean(champion_metrics),
                    champion_version=champion.version if champion else None)
        from models.card import slices_of_test_window
        from models.lineage import data_lineage

        version = self.registry.log_and_register(
            result, self.settings.model_name, self.feature_service, alias=CHALLENGER,
            actor=self.actor, reason=f"retrain at {now.isoformat()}: {reason}",
            data=data_lineage(labeled, source=f"labels as of {now.isoformat()}"),
            slices=slices_of_test_window(labeled, result))
        self._audit(now, "registered", version=version, alias=CHALLENGER)
        decision = decide(challenger, champion_metrics, self.policy)
        if decision.promote:
            self.registry.set_alias(self.settings.model_name, CHAMPION, version, self.actor,
                                    f"{decision.reason} (evaluated at {now.isoformat()})",
                                    metrics=challenger, action="promote")
        self._audit(now, "promoted" if decision.promote else "rejected", version=version,
                    reason=decision.reason, checks=decision.checks)
        log.info("retrain at %s: v%s %s", now, version, decision.reason)
        return RetrainOutcome(now, version, champion.version if champion else None,
                              champion_metrics, challenger, decision,
                              {k: v.isoformat() for k, v in windows.items()})


def _clean(metrics: dict[str, float] | None) -> dict[str, float | None] | None:
    """NaN-free for strict JSON."""
    if metrics is None:
        return None
    return {k: (None if v != v else float(v)) for k, v in metrics.items()}
