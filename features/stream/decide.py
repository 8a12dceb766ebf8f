"""Decisions from the vectors a batch just computed: the scorer's logic, not its loop.

Uses the champion (and the River online model, a ``shadow`` and a ``canary`` if set) with
the decision policy, reason codes and record shapes of :mod:`scoring`. A model that fails on
the whole matrix is retried row by row, and a row the champion still fails on is returned as
a failure (dead-lettered by the stage) — one record never stops a batch.

**Canary routing**: when a ``canary`` alias holds a share, each transaction goes to the arm
:func:`scoring.routing.arms_for` gives its card (salted by the canary version, so a card sees
one model for the whole canary). The canary arm is scored, decided (with the canary's own
policy) and explained by the canary model; its records also carry the champion's score of
the same transaction (``scores.champion``, for the rank-agreement gate). Every record says
its ``arm`` and, in ``model_version.batch``, the version that scored it.

A ``shadow`` or ``canary`` alias that cannot be loaded or served is logged, counted and
skipped: the champion keeps scoring (all cards, for a canary). A canary that fails on a row
leaves that row to the champion's score, with ``error: true`` on its (canary-arm) record.
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
from scoring.routing import arms_for

log = logging.getLogger("fraudstream.features.stream.decide")

CHAMPION, SHADOW, CANARY = "champion", "shadow", "canary"
MODEL_CHECK_SECONDS = 5.0
READY_MARKER = "scoring with model version"
Matrix = npt.NDArray[np.float64]


@dataclass
class Decided:
    """One decision: the ``scores`` record and, for review/decline, the ``alerts`` one."""

    item: TxnItem
    score: dict[str, Any]
    alert: dict[str, Any] | None


@dataclass
class _Scores:
    """Per-row outcome of one batch (rows = the champion-scorable items, in order)."""

    batch: Matrix  # the acting model's own score
    final: Matrix  # after the online combination: what the policy decides on
    online: Matrix | None
    canary: npt.NDArray[np.bool_]  # scored by the canary
    errors: npt.NDArray[np.bool_]  # routed to the canary, which failed on it
    champion: Matrix  # the champion's final score (paired, for canary rows)

    def rows(self) -> _Rows:
        return _Rows(self.batch.tolist(), self.final.tolist(),
                     None if self.online is None else np.asarray(self.online).tolist(),
                     self.canary.tolist(), self.errors.tolist(), self.champion.tolist())


@dataclass
class _Rows:
    """:class:`_Scores` as Python lists, for the per-record loop (no numpy scalars)."""

    batch: list[float]
    final: list[float]
    online: list[float] | None
    canary: list[bool]
    errors: list[bool]
    champion: list[float]


def predict(booster: Any, matrix: Matrix) -> tuple[Matrix, list[int]]:
    """Scores for the rows ``booster`` can score (0 elsewhere), and the indices it cannot."""
    try:
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float64), []
    except Exception:  # noqa: BLE001 - retried row by row below
        scores = np.zeros(len(matrix))
        failed = []
        for i in range(len(matrix)):
            try:
                scores[i] = booster.inplace_predict(matrix[i: i + 1])[0]
            except Exception:  # noqa: BLE001 - this row is dead-lettered or falls back
                failed.append(i)
        return scores, failed


class Decider:
    """Holds the models and the policies; :meth:`decide` turns vectors into records."""

    def __init__(self, models: ModelSource, served: list[str], top_k: int,
                 thresholds: tuple[float | None, float], online: OnlineScorer | None = None,
                 on_models: Callable[[Decider], None] | None = None,
                 on_shadow_error: Callable[[str], None] | None = None,
                 on_canary_error: Callable[[str], None] | None = None) -> None:
        self._models, self._served, self._top_k = models, served, top_k
        self._thresholds = thresholds
        self.online = online
        self.model: ScoringModel | None = None
        self.shadow: ScoringModel | None = None
        self.canary: ScoringModel | None = None
        self.canary_share = 0.0
        self.policy: Policy | None = None
        self.canary_policy: Policy | None = None
        self._on_models = on_models or (lambda d: None)
        self._on_error = {SHADOW: on_shadow_error or (lambda reason: None),
                          CANARY: on_canary_error or (lambda reason: None)}
        self._failed: dict[str, str | None] = {}  # alias -> version whose failure was logged
        self._checked = 0.0

    def start(self) -> None:
        self._use(self._models.load(CHAMPION))
        try:
            self._refresh_shadow()
            self._refresh_canary()
        except Exception as exc:  # noqa: BLE001 - retried at the next check
            log.warning("shadow/canary aliases unreadable (%s); the champion scores all", exc)

    def _policy(self, model: ScoringModel) -> Policy:
        review, decline = self._thresholds
        return policy_for(review, decline, model.metrics.get("budget_threshold"))

    def _use(self, model: ScoringModel) -> None:
        check_servable(model, self._served)
        self.policy = self._policy(model)
        self.model = model
        log.info("%s %s, %s", READY_MARKER, model.version, self.policy)
        self._on_models(self)

    def maybe_swap(self) -> None:
        """Follow the ``champion`` / ``shadow`` / ``canary`` aliases and the canary's share
        (checked every few seconds). A registry or snapshot store that fails is logged and
        the current models go on."""
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
        self._refresh_canary()

    def _optional(self, alias: str, current: ScoringModel | None
                  ) -> tuple[bool, ScoringModel | None]:
        """``(changed, model)`` of an optional alias. A version that cannot be loaded or
        served is logged once, counted every check, and leaves the alias unused (None); a
        registry that cannot be read raises (:meth:`maybe_swap` keeps the models in use)."""
        version = self._models.alias_version(alias)
        if version == (current.version if current else None):
            return False, current
        try:
            candidate = self._models.load(alias) if version is not None else None
            if candidate is not None:
                check_servable(candidate, self._served)
        except Exception as exc:  # noqa: BLE001 - an optional model never stops the champion
            if self._failed.get(alias, "") != version:
                log.warning("%s model v%s skipped: %s", alias, version, exc)
            self._failed[alias] = version
            self._on_error[alias](type(exc).__name__)
            return current is not None, None
        self._failed.pop(alias, None)
        log.info("%s model: %s", alias, version)
        return True, candidate

    def _refresh_shadow(self) -> None:
        changed, self.shadow = self._optional(SHADOW, self.shadow)
        if changed:
            self._on_models(self)

    def _refresh_canary(self) -> None:
        changed, canary = self._optional(CANARY, self.canary)
        share = float(self._models.canary_share()) if canary is not None else 0.0
        self.canary = canary
        if changed or share != self.canary_share:
            self.canary_policy = self._policy(canary) if canary else None
            if canary is not None:
                log.info("canary v%s at %.0f%%", canary.version, 100 * share)
            self.canary_share = share
            self._on_models(self)

    def _routed(self, items: list[TxnItem]) -> npt.NDArray[np.bool_]:
        if self.canary is None or self.canary_share <= 0.0:
            return np.zeros(len(items), dtype=bool)
        arms = arms_for((t.event.card_id for t in items), self.canary_share,
                        self.canary.version)
        return np.array([a == CANARY for a in arms], dtype=bool)

    def _combine(self, batch: Matrix, matrix: Matrix) -> tuple[Matrix, Matrix | None]:
        if self.online is None or not len(batch):
            return batch, None
        return self.online.combine(batch, matrix)

    def _score(self, items: list[TxnItem], matrix: Matrix, champ: Matrix) -> _Scores:
        final, online_p = self._combine(champ, matrix)
        final = np.asarray(final, dtype=np.float64)
        out = _Scores(champ.copy(), final.copy(), online_p, self._routed(items),
                      np.zeros(len(items), dtype=bool), final)
        if self.canary is None or not out.canary.any():
            return out
        rows = np.flatnonzero(out.canary)
        c_batch, c_failed = predict(self.canary.booster, matrix[rows])
        if c_failed:
            self._on_error[CANARY]("row")
            out.errors[rows[c_failed]] = True
            out.canary[rows[c_failed]] = False
            keep = np.setdiff1d(np.arange(len(rows)), c_failed)
            rows, c_batch = rows[keep], c_batch[keep]
        if len(rows):
            out.batch[rows] = c_batch
            c_final, c_online = self._combine(c_batch, matrix[rows])
            out.final[rows] = c_final
            if c_online is not None and out.online is not None:
                out.online = np.asarray(out.online, dtype=np.float64).copy()
                out.online[rows] = c_online
        return out

    def decide(self, items: list[TxnItem], vectors: list[tuple[float, ...]], now_ms: int
               ) -> tuple[list[Decided], list[int]]:
        """Records for each scorable item, and the indices the champion failed on."""
        if not items:
            return [], []
        if self.model is None or self.policy is None:
            raise RuntimeError("decider not started")
        matrix = np.asarray(vectors, dtype=np.float64)
        champ, failed = predict(self.model.booster, matrix)
        bad = set(failed)
        ok = [i for i in range(len(items)) if i not in bad]
        matrix = matrix[ok]
        s = self._score([items[i] for i in ok], matrix, champ[ok])
        decisions, reasons = self._decisions(s, matrix)
        shadow = self.shadow.booster.inplace_predict(matrix) if self.shadow and len(ok) else None
        rows = s.rows()
        out = []
        for j, i in enumerate(ok):
            record = self._record(items[i], vectors[i], rows, j, decisions[j], now_ms)
            if shadow is not None and self.shadow is not None:
                record["shadow"] = {"version": self.shadow.version,
                                    "score": round(float(shadow[j]), 6),
                                    "decision": self.policy.decide(float(shadow[j]))}
            alert = None
            if j in reasons:
                alert = alert_record(record, items[i].record, self._lifted(reasons[j], rows, j))
            out.append(Decided(items[i], record, alert))
        return out, failed

    def _decisions(self, s: _Scores, matrix: Matrix
                   ) -> tuple[list[str], dict[int, list[dict[str, Any]]]]:
        """Each row's decision by its arm's policy, and the reasons of the alerting rows."""
        decisions: list[str] = [""] * len(s.final)
        reasons: dict[int, list[dict[str, Any]]] = {}
        for model, policy, mask in ((self.model, self.policy, ~s.canary),
                                    (self.canary, self.canary_policy, s.canary)):
            rows = np.flatnonzero(mask)
            if model is None or policy is None or not len(rows):
                continue
            for j, d in zip(rows, policy.decide_many(s.final[rows]), strict=True):
                decisions[j] = d
            alerts = [int(j) for j in rows if decisions[j] in ALERT_DECISIONS]
            reasons.update(zip(alerts, top_reasons(model.booster, matrix[alerts],
                                                   model.feature_names, self._top_k),
                               strict=True))
        return decisions, reasons

    def _record(self, item: TxnItem, vector: tuple[float, ...], s: _Rows, j: int,
                decision: str, now_ms: int) -> dict[str, Any]:
        on_canary = s.canary[j]
        model = self.canary if on_canary and self.canary is not None else self.model
        assert model is not None  # noqa: S101 - started
        versions = {"batch": model.version,
                    "online": self.online.version if self.online is not None else None}
        record = score_record(
            item.record, score=s.final[j], decision=decision, versions=versions,
            feature_names=model.feature_names, vector=vector,
            latency_ms=max(0, now_ms - item.publish_ms),
            parts={"batch": s.batch[j], "online": None if s.online is None else s.online[j]})
        record["arm"] = CANARY if on_canary or s.errors[j] else CHAMPION
        if on_canary:
            record["scores"]["champion"] = float(s.champion[j])  # unrounded, as `score`
        if s.errors[j]:
            record["error"] = True
        return record

    def _lifted(self, reasons: list[dict[str, Any]], s: _Rows, j: int
                ) -> list[dict[str, Any]]:
        score, batch = s.final[j], s.batch[j]
        if s.online is None or score - batch <= 0.01:
            return reasons
        lift = {"code": "online_model", "value": s.online[j],
                "contribution": round(score - batch, 4)}
        return [lift, *reasons][: self._top_k]
