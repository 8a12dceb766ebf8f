"""Drift statistics: PSI on reference bins, two-sample KS, multiple-testing corrections.

Pure numpy/scipy: no I/O, no clock. Fractions are shares of *finite* values per bin; bins
are given by ascending ``cuts`` (see :func:`bin_fractions`), so ``len(cuts) + 1`` bins.

PSI (population stability index) of expected fractions ``e`` and actual fractions ``a``::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

A bin that is empty on either side would make the log infinite, so both sides are floored
at ``eps`` (default :data:`PSI_EPSILON` = 1e-4, i.e. 0.01 %) *before* the sum, without
renormalising. The floor bounds one empty bin's contribution to about
``|a - e| * ln(|a - e| / eps)``: a bin that held 1 % of the reference and is now empty adds
0.01 * ln(100) = 0.046, below the 0.1 warning line, whereas a 1 % bin of values never seen
in the reference adds about 0.046 too, and a 10 % such bin 0.69 (an alert). Smaller ``eps``
makes unseen values weigh more; larger blunts the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

PSI_EPSILON = 1e-4
Correction = Literal["bonferroni", "bh"]

FloatArray = NDArray[np.float64]


def bin_counts(values: Any, cuts: Sequence[float] | FloatArray) -> NDArray[np.int64]:
    """Counts of finite ``values`` per bin: bin ``i`` holds ``cuts[i-1] < x <= cuts[i]``.

    The first bin is open to -inf and the last (``x > cuts[-1]``) to +inf.

    >>> bin_counts([0.0, 1.0, 1.0, 5.0, float("nan")], [0.0, 1.0]).tolist()
    [1, 2, 1]
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    c = np.asarray(cuts, dtype=np.float64)
    return np.bincount(np.searchsorted(c, x, side="left"), minlength=c.size + 1).astype(np.int64)


def bin_fractions(values: Any, cuts: Sequence[float] | FloatArray) -> FloatArray:
    """Shares of finite ``values`` per bin (all zeros when there is no finite value)."""
    counts = bin_counts(values, cuts).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def psi(expected: Any, actual: Any, eps: float = PSI_EPSILON) -> float:
    """Population stability index of two aligned fraction vectors (see module doc).

    Symmetric, >= 0, 0 for identical vectors. Conventional reading: < 0.1 stable,
    0.1-0.25 moderate shift, >= 0.25 major shift.

    >>> round(psi([0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]), 4)
    0.2282
    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]), 4)  # empty reference bin, eps-floored
    0.7124
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    if e.shape != a.shape:
        raise ValueError(f"fraction vectors differ in length: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def ks_test(values: Any, reference_sample: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic D and p-value of finite ``values`` vs the sample.

    Uses scipy's asymptotic distribution (exact is needlessly slow for windows of
    thousands); on discrete data the test is conservative (p-values too large), which
    errs against false alarms. Returns ``(0.0, 1.0)`` when either side has no finite value.

    >>> d, p = ks_test([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    >>> (d, p)
    (0.0, 1.0)
    """
    x = np.asarray(values, dtype=np.float64)
    r = np.asarray(reference_sample, dtype=np.float64)
    x, r = x[np.isfinite(x)], r[np.isfinite(r)]
    if x.size == 0 or r.size == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(x, r, method="asymp")
    return float(result.statistic), float(result.pvalue)


def adjust_pvalues(pvalues: Sequence[float], method: Correction = "bonferroni") -> list[float]:
    """P-values adjusted for testing ``len(pvalues)`` columns of one window at once.

    ``bonferroni`` (``min(1, p * m)``) bounds the chance of *any* false alarm in a window
    (family-wise error); ``bh`` (Benjamini-Hochberg step-up) bounds the expected share of
    false alarms among the flagged columns (false discovery rate), so it is less strict.

    >>> adjust_pvalues([0.01, 0.02, 0.5], "bonferroni")
    [0.03, 0.06, 1.0]
    >>> [round(p, 4) for p in adjust_pvalues([0.01, 0.02, 0.5], "bh")]
    [0.03, 0.03, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    if method == "bonferroni":
        return [float(v) for v in np.minimum(1.0, p * m)]
    if method == "bh":
        order = np.argsort(p)
        ranked = p[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]  # step-up: monotone from the top
        out = np.empty(m)
        out[order] = np.minimum(1.0, ranked)
        return [float(v) for v in out]
    raise ValueError(f"unknown correction {method!r}: use 'bonferroni' or 'bh'")
