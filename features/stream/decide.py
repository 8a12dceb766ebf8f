"""Decisions from the vectors a batch just computed: the scorer's logic, not its loop.

Uses the champion (and the River online model, and a ``shadow`` if one is set) with the
decision policy, reason codes and record shapes of :mod:`scoring`. A model that fails on the
whole matrix is retried row by row, and a row it still fails on is returned as a failure
(dead-lettered by the stage) — one record never stops a batch. A ``shadow`` alias that
cannot be loaded or served is logged, counted and skipped; the champion keeps scoring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from features.stream.items import TxnItem
from scoring.policy import ALERT_DECISIONS, Policy, policy_for
from scoring.ports import ModelSource, OnlineScorer, ScoringModel, check_servable
from scoring.reasons import top_reasons
from scoring.records import alert_record, score_record

log = logging.getLogger("fraudstream.features.stream.decide")

CHAMPION, SHADOW = "champion", "shadow"
MODEL_CHECK_SECONDS = 5.0
READY_MARKER = "scoring with model version"


@dataclass
class Decided:
    """One decision: the ``scores`` record and, for review/decline, the ``alerts`` one."""

    item: TxnItem
    score: dict[str, Any]
    alert: dict[str, Any] | None


class Decider:
    """Holds the models and the policy; :meth:`decide` turns vectors into records."""

    def __init__(self, models: ModelSource, served: list[str], top_k: int,
                 thresholds: tuple[float | None, float], online: OnlineScorer | None = None,
                 on_models: Callable[[Decider], None] | None = None,
                 on_shadow_error: Callable[[str], None] | None = None) -> None:
        self._models, self._served, self._top_k = models, served, top_k
        self._thresholds = thresholds
        self.online = online
        self.model: ScoringModel | None = None
        self.shadow: ScoringModel | None = None
        self.policy: Policy | None = None
        self._on_models = on_models or (lambda d: None)
        self._on_shadow_error = on_shadow_error or (lambda reason: None)
        self._checked = 0.0

    def start(self) -> None:
        self._use(self._models.load(CHAMPION))
        self._refresh_shadow()

    def _use(self, model: ScoringModel) -> None:
        check_servable(model, self._served)
        review, decline = self._thresholds
        self.policy = policy_for(review, decline, model.metrics.get("budget_threshold"))
        self.model = model
        log.info("%s %s, %s", READY_MARKER, model.version, self.policy)
        self._on_models(self)

    def maybe_swap(self) -> None:
        """Follow the ``champion`` / ``shadow`` aliases (checked every few seconds). A
        registry or snapshot store that fails is logged and the current models go on."""
        now = time.monotonic()
        if self.model is None or now - self._checked < MODEL_CHECK_SECONDS:
            return
        self._checked = now
        try:
            self._swap()
        except Exception as exc:  # noqa: BLE001 - keep deciding with the models in use
            log.warning("model check failed (%s); still scoring with version %s", exc,
                        self.model.version)

    def _swap(self) -> None:
        if self.online is not None and self.online.maybe_reload():
            self._on_models(self)
        if self.model is None:
            return
        version = self._models.alias_version(CHAMPION)
        if version is not None and version != self.model.version:
            log.info("champion moved: %s -> %s", self.model.version, version)
            self._use(self._models.load(CHAMPION))
        self._refresh_shadow()

    def _refresh_shadow(self) -> None:
        try:
            version = self._models.alias_version(SHADOW)
            if version == (self.shadow.version if self.shadow else None):
                return
            candidate = self._models.load(SHADOW) if version is not None else None
            if candidate is not None:
                check_servable(candidate, self._served)
        except Exception as exc:  # noqa: BLE001 - a shadow must never stop the champion
            if self.shadow is not None or "shadow" not in str(getattr(self, "_bad", "")):
                log.warning("shadow model skipped: %s", exc)
            self._bad = f"shadow {exc}"
            self.shadow = None
            self._on_shadow_error(type(exc).__name__)
            return
        self.shadow = candidate
        log.info("shadow model: %s", version)
        self._on_models(self)

    def _predict(self, matrix: npt.NDArray[np.float64]) -> tuple[Any, list[int]]:
        """Champion scores for the rows it can score, and the indices it cannot."""
        if self.model is None:
            raise RuntimeError("decider not started")
        booster = self.model.booster
        try:
            return booster.inplace_predict(matrix), []
        except Exception:  # noqa: BLE001 - retried row by row below
            scores = np.zeros(len(matrix))
            failed = []
            for i in range(len(matrix)):
                try:
                    scores[i] = booster.inplace_predict(matrix[i: i + 1])[0]
                except Exception:  # noqa: BLE001 - this row is dead-lettered
                    failed.append(i)
            return scores, failed

    def decide(self, items: list[TxnItem], vectors: list[tuple[float, ...]], now_ms: int
               ) -> tuple[list[Decided], list[int]]:
        """Records for each scorable item, and the indices the model failed on."""
        if not items:
            return [], []
        if self.model is None or self.policy is None:
            raise RuntimeError("decider not started")
        model, policy = self.model, self.policy
        matrix = np.asarray(vectors, dtype=np.float64)
        batch, failed = self._predict(matrix)
        ok = [i for i in range(len(items)) if i not in set(failed)]
        matrix, batch = matrix[ok], np.asarray(batch)[ok]
        scores, online_p = batch, None
        if self.online is not None and len(ok):
            scores, online_p = self.online.combine(batch, matrix)
        decisions = policy.decide_many(scores)
        alerts = [j for j, d in enumerate(decisions) if d in ALERT_DECISIONS]
        reasons = dict(zip(alerts, top_reasons(model.booster, matrix[alerts],
                                               model.feature_names, self._top_k), strict=True))
        shadow = self.shadow.booster.inplace_predict(matrix) if self.shadow and len(ok) else None
        versions = {"batch": model.version,
                    "online": self.online.version if self.online is not None else None}
        out = []
        for j, i in enumerate(ok):
            item = items[i]
            out_score = score_record(
                item.record, score=float(scores[j]), decision=decisions[j], versions=versions,
                feature_names=model.feature_names, vector=vectors[i],
                latency_ms=max(0, now_ms - item.publish_ms),
                parts={"batch": float(batch[j]),
                       "online": None if online_p is None else float(online_p[j])})
            if shadow is not None and self.shadow is not None:
                out_score["shadow"] = {"version": self.shadow.version,
                                       "score": round(float(shadow[j]), 6),
                                       "decision": policy.decide(float(shadow[j]))}
            alert = None
            if j in reasons:
                alert = alert_record(out_score, item.record, self._lifted(
                    reasons[j], float(scores[j]), float(batch[j]), online_p, j))
            out.append(Decided(item, out_score, alert))
        return out, failed

    def _lifted(self, reasons: list[dict[str, Any]], score: float, batch: float,
                online_p: Any, j: int) -> list[dict[str, Any]]:
        if online_p is None or score - batch <= 0.01:
            return reasons
        lift = {"code": "online_model", "value": float(online_p[j]),
                "contribution": round(score - batch, 4)}
        return [lift, *reasons][: self._top_k]
