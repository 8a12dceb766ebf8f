"""The River online model and the rule that combines it with the XGBoost champion (pure).

Model choice: ``SignedLog1p | StandardScaler | LogisticRegression`` (River), trained by SGD
one labeled decision at a time. Why a linear model rather than an ARF / Hoeffding tree:

- it learns something useful from the first few dozen frauds (trees need hundreds of
  samples per split), which is exactly the regime of a fraud pattern that just appeared;
- a frozen snapshot is a weight vector, so scorers predict a whole micro-batch with one
  numpy dot product (microseconds; :meth:`OnlineModel.predict_many`), where River trees cost
  ~50 us per row and tree per prediction in pure Python;
- the feature core already builds the non-linear signals (windows, z-scores, novelty), and
  ``SignedLog1p`` tames their heavy tails, so a linear boundary on top is adequate.

Class imbalance: the learner keeps every fraud and a ``negative_rate`` sample of genuine
decisions (deterministic by transaction id, see :mod:`models.online_join`), so SGD sees
~10-20% positives. Sampling only shifts the model's log-odds by ``log(negative_rate)``:
:meth:`OnlineModel.predict_many` removes that shift (calibrated probabilities), and the
combination uses log-odds *relative to the model's own prior*, where it cancels anyway.

Combination (:func:`combine`)::

    evidence = max(0, logit(online) - logit(prior))          # "more suspicious than usual"
    combined = sigmoid(logit(xgb) + weight(n_frauds) * evidence)
    weight(n) = 0 if n < warmup_frauds else online_weight

One-sided on purpose: the online model can only *raise* a score, by the log-odds it
adds over its base rate, so (a) before warm-up the combined score equals the champion's
(weight 0: no precision cost while the model is untrained), (b) a transaction the champion
already flags stays flagged (no recall lost on known patterns), (c) a new pattern the
champion scores low but the online model recognises from recent labels is lifted by a
factor ``exp(evidence)`` in odds, into the alert budget. It is the naive-Bayes update of
the champion's odds by independent evidence, with the downward half removed because the
two models share features and the champion is the better-validated of the two.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from river import base, compose, linear_model, optim, preprocessing

FloatArray = npt.NDArray[np.float64]
EPS = 1e-6


class SignedLog1p(base.Transformer):
    """``x -> sign(x) * log1p(|x|)``: amounts, counts and durations lose their heavy tails."""

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        return {k: math.copysign(math.log1p(abs(v)), v) for k, v in x.items()}


def _signed_log1p(matrix: FloatArray) -> FloatArray:
    return np.sign(matrix) * np.log1p(np.abs(matrix))


def logit(p: FloatArray | float) -> FloatArray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


@dataclass(frozen=True)
class CombineRule:
    """Parameters of :func:`combine` (``Settings.online_weight`` / ``online_warmup_frauds``)."""

    weight: float = 1.0
    warmup_frauds: int = 50

    def weight_for(self, frauds_learned: int) -> float:
        return 0.0 if frauds_learned < self.warmup_frauds else self.weight


def combine(
    xgb: FloatArray, online_logodds_lift: FloatArray | None, weight: float
) -> FloatArray:
    """Combined fraud score (see module doc); ``None`` or ``weight == 0`` returns ``xgb``.

    >>> xgb = np.array([0.01, 0.5, 0.9])
    >>> combine(xgb, np.array([2.0, -3.0, 0.0]), 0.0).tolist() == xgb.tolist()
    True
    >>> np.round(combine(xgb, np.array([2.0, -3.0, 0.0]), 1.0), 4).tolist()
    [0.0695, 0.5, 0.9]
    """
    scores = np.asarray(xgb, dtype=np.float64)
    if online_logodds_lift is None or weight <= 0.0:
        return scores
    lift = np.maximum(0.0, np.asarray(online_logodds_lift, dtype=np.float64))
    return sigmoid(logit(scores) + weight * lift)


class OnlineModel:
    """A River pipeline plus the counters that make its output interpretable.

    ``negative_rate`` must be the sampling rate the caller applies to genuine
    examples. Picklable (snapshots); deterministic for a given example order.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        negative_rate: float = 0.05,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
    ) -> None:
        self.feature_names = tuple(feature_names)
        self.negative_rate = negative_rate
        self.pipeline = compose.Pipeline(
            SignedLog1p(),
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(
                optimizer=optim.SGD(learning_rate), l2=l2, clip_gradient=5.0
            ),
        )
        self.frauds = 0
        self.genuines = 0  # learned (i.e. after sampling)

    @property
    def learned(self) -> int:
        return self.frauds + self.genuines

    def learn(self, vector: Iterable[float], fraud: bool) -> None:
        """One SGD step on ``vector`` (in ``feature_names`` order; NaN counts as 0)."""
        x = {n: (float(v) if v == v else 0.0) for n, v in zip(self.feature_names, vector,
                                                               strict=True)}
        self.pipeline.learn_one(x, bool(fraud))
        if fraud:
            self.frauds += 1
        else:
            self.genuines += 1

    def prior_logit(self) -> float:
        """Log-odds of fraud in the (sampled) training stream, smoothed; 0 when empty."""
        return math.log((self.frauds + 1.0) / (self.genuines + 1.0))

    def raw_logits(self, matrix: FloatArray) -> FloatArray:
        """The pipeline's log-odds for rows in ``feature_names`` order, vectorised.

        Equal to River's ``predict_proba_one`` (tested); reads the scaler's running means and
        variances and the regression's weights, which are frozen in a snapshot.
        """
        rows = np.asarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.feature_names):
            raise ValueError(f"expected (n, {len(self.feature_names)}) rows, got {rows.shape}")
        rows = np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
        scaler = self.pipeline.steps["StandardScaler"]
        regression = self.pipeline.steps["LogisticRegression"]
        names = self.feature_names
        weights_of = regression.weights
        means = np.array([scaler.means.get(n, 0.0) for n in names])
        variances = np.array([scaler.vars.get(n, 0.0) for n in names])
        weights = np.array([weights_of.get(n, 0.0) for n in names])
        std = np.sqrt(variances)
        scaled = np.divide(
            _signed_log1p(rows) - means, std, out=np.zeros_like(rows), where=std > 0
        )
        return np.asarray(scaled @ weights + float(regression.intercept), dtype=np.float64)

    def outputs(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(calibrated probabilities, lift over the prior)`` with one pass over the rows."""
        raw = self.raw_logits(matrix)
        return sigmoid(raw + math.log(self.negative_rate)), raw - self.prior_logit()

    def predict_many(self, matrix: FloatArray) -> FloatArray:
        """Calibrated fraud probabilities (the negative-sampling shift removed)."""
        return sigmoid(self.raw_logits(matrix) + math.log(self.negative_rate))

    def lift_many(self, matrix: FloatArray) -> FloatArray:
        """Log-odds over the model's own prior: the ``evidence`` of :func:`combine`."""
        return self.raw_logits(matrix) - self.prior_logit()
