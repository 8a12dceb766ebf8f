"""The reference a window is compared with, read from a model's ``reference_profile.json``.

The profile (:mod:`models.profile`) stores per column quantile ``edges`` whose bin ``i`` holds
``edges[i] < x <= edges[i + 1]`` with the first bin open to -inf. Its cut points are therefore
``edges[1:-1]``, and the column minimum ``edges[0]`` is *not* a cut: for a binary feature
(edges ``[0, 1]``) every value falls in one bin and PSI would be blind, and for counts the
point mass at the minimum is merged with the next value. :meth:`ColumnReference.from_profile`
adds ``edges[0]`` as a cut and splits the first bin's fraction by the share of the profile's
sample at or below it. For a continuous column the new bin is nearly empty (it holds the
minimum only) and costs nothing; for a discrete one it restores the missing bin.

``sample`` (finite values, sorted) is the KS reference; its size comes from the profile's
``sample_size`` (the larger, the more powerful KS; see ``docs/drift.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.stats import FloatArray, bin_fractions

SCORE = "score"


@dataclass(frozen=True)
class ColumnReference:
    """Bins (``cuts``), expected bin fractions and KS sample of one column."""

    name: str
    cuts: FloatArray
    expected: FloatArray
    sample: FloatArray
    missing_rate: float = 0.0
    n: int = 0

    @property
    def usable(self) -> bool:
        """False when the reference had no finite value: nothing to compare against."""
        return self.expected.size > 0 and self.sample.size > 0

    @classmethod
    def from_profile(cls, name: str, column: Mapping[str, Any]) -> ColumnReference:
        """Reference of one profile column (``edges``, ``fractions``, ``sample``, ...)."""
        edges = [float(e) for e in column.get("edges", [])]
        fractions = [float(f) for f in column.get("fractions", [])]
        sample = np.sort(np.asarray(column.get("sample", []), dtype=np.float64))
        sample = sample[np.isfinite(sample)]
        missing = float(column.get("missing_rate", 0.0))
        n = int(column.get("n", 0))
        empty = np.empty(0, dtype=np.float64)
        if len(edges) < 2 or len(fractions) != len(edges) - 1:
            return cls(name, empty, empty, sample, missing, n)
        below = float((sample <= edges[0]).sum())
        in_first = float((sample <= edges[1]).sum()) if len(edges) > 2 else float(sample.size)
        share_at_min = below / in_first if in_first > 0 else 0.0
        first = fractions[0]
        expected = [first * share_at_min, first * (1.0 - share_at_min), *fractions[1:]]
        cuts = np.asarray([edges[0], *edges[1:-1]], dtype=np.float64)
        return cls(name, cuts, np.asarray(expected, dtype=np.float64), sample, missing, n)

    @classmethod
    def from_values(
        cls, name: str, values: Any, bins: int = 10, sample_size: int = 2000, seed: int = 0
    ) -> ColumnReference:
        """Reference computed straight from data (tests, backtests): same rules as a profile.

        Bins are the distinct quantile edges, with the minimum as a cut (see module doc).
        """
        x = np.asarray(values, dtype=np.float64)
        finite = x[np.isfinite(x)]
        missing = float(1.0 - finite.size / x.size) if x.size else 0.0
        empty = np.empty(0, dtype=np.float64)
        if finite.size == 0:
            return cls(name, empty, empty, empty, missing, int(x.size))
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
        cuts = edges[:-1] if edges.size > 1 else edges
        rng = np.random.default_rng(seed)
        take = min(sample_size, finite.size)
        sample = np.sort(rng.choice(finite, size=take, replace=False))
        return cls(name, cuts, bin_fractions(finite, cuts), sample, missing, int(x.size))


@dataclass(frozen=True)
class Reference:
    """Per-column references (features, then :data:`SCORE`) of one model version."""

    columns: Mapping[str, ColumnReference]
    model_version: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any], model_version: str | None) -> Reference:
        """From a ``reference_profile.json`` dict (:func:`models.profile.reference_profile`)."""
        features: Mapping[str, Any] = profile.get("features", {})
        names = list(profile.get("feature_names", features))
        columns = {n: ColumnReference.from_profile(n, features[n]) for n in names}
        if SCORE in profile:
            columns[SCORE] = ColumnReference.from_profile(SCORE, profile[SCORE])
        return cls(columns, model_version)

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Any],
        model_version: str | None = None,
        bins: int = 10,
        sample_size: int = 2000,
        seed: int = 0,
    ) -> Reference:
        """From raw column arrays (``{"amount": [...], ..., "score": [...]}``)."""
        refs = {
            name: ColumnReference.from_values(name, values, bins, sample_size, seed + i)
            for i, (name, values) in enumerate(columns.items())
        }
        return cls(refs, model_version)
