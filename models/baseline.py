"""The textbook baseline every evaluation reports next to the model: a logistic regression
on 15 classic features.

The features (Le Borgne et al., *Reproducible machine learning for credit card fraud
detection*): the amount, weekend and night flags; the card's transaction count and mean
amount over 1 / 7 / 30 days; the terminal's transaction count and fraud rate over 1 / 7 / 30
days ending the label delay before T (``term_*_delayed``, :mod:`features.terminal`). A
model that does not beat it by a clear margin is not doing its job (issue 14: published AP
0.606 for this baseline on the held-out benchmark).

The regression is a small, deterministic numpy implementation (no extra dependency):
features standardised on the training rows, L2 penalty ``0.5 * |w|^2 / C`` on the weights
(``C = 1``, the intercept unpenalised; the usual library default), fitted by Newton's
method to convergence. It exposes ``inplace_predict`` so :class:`replay.candidates.Model`
scores it exactly like a booster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from infra.errors import ModelError

# Columns of the feature frame the baseline reads (``card_amount_sum_24h`` becomes the
# 1-day mean amount, divided by ``card_txn_count_24h``).
SOURCE_FEATURES: tuple[str, ...] = (
    "amount", "is_weekend", "is_night",
    "card_txn_count_24h", "card_amount_sum_24h",
    "card_txn_count_7d", "card_amount_mean_7d",
    "card_txn_count_30d", "card_amount_mean_30d",
    "term_txn_count_1d_delayed", "term_fraud_rate_1d_delayed",
    "term_txn_count_7d_delayed", "term_fraud_rate_7d_delayed",
    "term_txn_count_30d_delayed", "term_fraud_rate_30d_delayed",
)
BASELINE_FEATURES: tuple[str, ...] = tuple(
    "card_amount_mean_24h" if n == "card_amount_sum_24h" else n for n in SOURCE_FEATURES)
BASELINE_LABEL = "baseline_lr"
_SUM24, _N24 = SOURCE_FEATURES.index("card_amount_sum_24h"), SOURCE_FEATURES.index(
    "card_txn_count_24h")


def textbook(matrix: np.ndarray) -> np.ndarray:
    """The 15 textbook features from a matrix of :data:`SOURCE_FEATURES` columns."""
    x = np.array(matrix, dtype=np.float64, copy=True)
    n = x[:, _N24]
    x[:, _SUM24] = np.where(n > 0, x[:, _SUM24] / np.where(n > 0, n, 1.0), 0.0)
    return x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow at large |z|


@dataclass(frozen=True)
class LogisticBaseline:
    """A fitted logistic regression on :data:`BASELINE_FEATURES` (see the module doc)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # intercept first, then one weight per standardised feature
    iterations: int
    feature_names: tuple[str, ...] = SOURCE_FEATURES

    @classmethod
    def fit(cls, matrix: np.ndarray, y: np.ndarray, c: float = 1.0, max_iter: int = 100,
            tol: float = 1e-8) -> LogisticBaseline:
        """Fit on rows of :data:`SOURCE_FEATURES`; ``y`` in {0, 1} with both classes."""
        labels = np.asarray(y, dtype=np.float64)
        if labels.size == 0 or labels.min() == labels.max():
            raise ModelError("the baseline needs both classes among its training rows")
        x = textbook(matrix)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
        penalty = np.full(z.shape[1], 1.0 / c)
        penalty[0] = 0.0
        coef = np.zeros(z.shape[1])
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
            p = _sigmoid(z @ coef)
            grad = z.T @ (p - labels) + penalty * coef
            hess = (z * (p * (1.0 - p))[:, None]).T @ z + np.diag(penalty)
            step = np.linalg.solve(hess + 1e-10 * np.eye(len(coef)), grad)
            coef = coef - step
            if float(np.max(np.abs(step))) < tol:
                break
        return cls(mean, scale, coef, it)

    def inplace_predict(self, matrix: np.ndarray) -> np.ndarray:
        """Fraud probability of each row of :data:`SOURCE_FEATURES` columns."""
        x = (textbook(matrix) - self.mean) / self.scale
        return _sigmoid(self.coef[0] + x @ self.coef[1:])


def fit_baseline(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray) -> LogisticBaseline:
    """The baseline fitted on ``frame``'s ``rows`` (a mask) with labels ``y`` (their labels
    as known at the training cut-off, as the model's own)."""
    missing = [c for c in SOURCE_FEATURES if c not in frame.columns]
    if missing:
        raise ModelError(f"the baseline needs feature columns {missing}")
    matrix = frame.loc[rows, list(SOURCE_FEATURES)].to_numpy(dtype=np.float64)
    return LogisticBaseline.fit(matrix, y)
