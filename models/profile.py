"""Reference profiles: what a model's inputs and scores looked like when it was evaluated.

Stored with every model version as ``reference_profile.json`` and read by the drift
monitor, so it is pure (numpy/pandas) and JSON-only: no NaN or infinity in the output.

Per column (each feature, and ``score``)::

    {"n": rows, "missing_rate": share of NaN/inf,
     "edges": ascending quantile edges (<= bins + 1, duplicates dropped),
     "fractions": share of finite values per bin, "sample": up to sample_size finite values}

Bin ``i`` of ``len(edges) - 1`` bins holds ``edges[i] < x <= edges[i + 1]``, with the first bin
open to -inf and the last to +inf, so live values outside the reference range still land
in a bin. Use :func:`bin_fractions` to bin live data the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PROFILE_VERSION = 1


def bin_fractions(values: Any, edges: list[float]) -> list[float]:
    """Share of finite ``values`` in each bin defined by ``edges`` (see module doc).

    >>> bin_fractions([0.0, 1.0, 2.0, 3.0], [0.0, 1.5, 3.0])
    [0.5, 0.5]
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n_bins = max(len(edges) - 1, 1)
    if x.size == 0:
        return [0.0] * n_bins
    interior = np.asarray(edges[1:-1], dtype=np.float64)
    counts = np.bincount(np.searchsorted(interior, x, side="left"), minlength=n_bins)
    return [float(c) / x.size for c in counts]


def column_profile(
    values: Any, bins: int = 10, sample_size: int = 200, rng: np.random.Generator | None = None
) -> dict[str, Any]:
    """Quantile bin edges, bin fractions, missing rate and a small sample of one column."""
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    profile: dict[str, Any] = {
        "n": int(x.size),
        "missing_rate": float(1.0 - finite.size / x.size) if x.size else 0.0,
    }
    if finite.size == 0:
        return {**profile, "edges": [], "fractions": [], "sample": []}
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:  # constant column: one bin
        edges = np.repeat(edges, 2)
    rng = rng or np.random.default_rng(0)
    take = min(sample_size, finite.size)
    sample = np.sort(rng.choice(finite, size=take, replace=False))
    return {
        **profile,
        "edges": [float(e) for e in edges],
        "fractions": bin_fractions(finite, edges.tolist()),
        "sample": [float(v) for v in sample],
    }


def reference_profile(
    frame: pd.DataFrame,
    feature_names: list[str] | tuple[str, ...],
    scores: Any,
    *,
    bins: int = 10,
    sample_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile of each feature of ``frame`` and of ``scores``, JSON-serialisable.

    Deterministic for a given ``seed``; ``scores`` must align with ``frame``'s rows.
    ``sample_size`` is the drift monitor's KS reference: with 1,000 values the sample's own
    noise stays well under the monitor's KS effect floor (D = 0.1), with 200 it does not
    (see ``docs/drift.md``); 16 columns of 1,000 values keep the JSON at a few hundred kB.
    """
    if len(frame) != len(np.asarray(scores)):
        raise ValueError("scores must have one value per frame row")
    rng = np.random.default_rng(seed)
    columns = {
        name: column_profile(frame[name].to_numpy(dtype=np.float64), bins, sample_size, rng)
        for name in feature_names
    }
    return {
        "version": PROFILE_VERSION,
        "bins": bins,
        "n_rows": len(frame),
        "feature_names": list(feature_names),
        "features": columns,
        "score": column_profile(scores, bins, sample_size, rng),
    }
